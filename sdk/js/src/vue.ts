// Filled in by the React wrapper.
export {};
