// The <script> build: window.AptrConnect, and the <aptr-connect-button> element registered on load.
import { AptrConnectError } from "./errors";
import { VERSION, authorize, init, reset } from "./core";
import { button, defineConnectButton } from "./button";

defineConnectButton();

export { AptrConnectError, VERSION, authorize, button, init, reset };
