// The <script> build: window.AptrConnect, and the <aptr-connect-button> element registered on load.
import { AptrConnectError } from "./errors";
import { VERSION, authorize, init, reset, adoptScriptOrigin } from "./core";
import { button, defineConnectButton } from "./button";

adoptScriptOrigin(); // while this script is document.currentScript
defineConnectButton();

export { AptrConnectError, VERSION, authorize, button, init, reset };
