"""Image Atlas core library: UI-free; the app, the CLI and the tests all call into it."""
