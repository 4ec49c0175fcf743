/** cleave's version (kept equal to package.json's by a test); workers refuse coordinators of another version. */
export const VERSION = "0.1.0";
