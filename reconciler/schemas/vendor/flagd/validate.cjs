// Validate flagd flag-definition JSON documents with the vendored flagd validator.
// Reads a JSON array of documents on stdin; prints a JSON array of error lists (empty = valid).
"use strict";
const validate = require("./flags.validator.cjs");
let input = "";
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((doc) => (validate(doc) ? [] : validate.errors.map(
    (e) => `${e.instancePath || "/"}: ${e.message} (${e.schemaPath})`)));
  process.stdout.write(JSON.stringify(out));
});
