// Checks documents against JSON Schemas with Ajv (draft 2020-12), an independent validator.
// usage: node schema-check.mjs FILE   FILE: one JSON object per line, {"schema": {...}, "docs": ["...", ...]}
// Prints one JSON object: how many schemas and documents were checked, and the first documents Ajv finds
// invalid (or schemas it cannot compile) with its errors; exits 1 on an error of its own.
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.length > 0);
// formats in "fast" mode: their syntax only (a date's day is not checked against its month)
const ajv = new Ajv2020({ strict: false, allErrors: false, allowUnionTypes: true });
addFormats(ajv, { mode: 'fast' });
const out = { schemas: 0, docs: 0, invalid: [], not_compiled: [] };
for (const line of lines) {
  const { schema, docs } = JSON.parse(line);
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    if (out.not_compiled.length < 10) out.not_compiled.push({ schema, error: String(e.message) });
    continue;
  }
  out.schemas++;
  for (const doc of docs) {
    out.docs++;
    if (!validate(JSON.parse(doc)) && out.invalid.length < 10) out.invalid.push({ schema, doc, errors: validate.errors });
  }
}
console.log(JSON.stringify(out));
