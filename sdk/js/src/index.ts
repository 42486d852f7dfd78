export { VERSION, init, authorize, reset, isInitialized } from "./core";
export type { InitOptions, AuthorizeOptions, AuthorizeResult } from "./core";
export { AptrConnectError } from "./errors";
export type { AptrErrorCode } from "./errors";
export { button, defineConnectButton } from "./button";
export type { ButtonOptions } from "./button";
