// Validates every example under schemas/examples with ajv (JSON Schema
// draft 2020-12), independently of the Go validators, and checks each
// invalid example fails where schemas/examples/invalid/manifest.json says.
// It also recomputes the hash chains of the valid examples from the
// definition in schemas/README.md, as a third implementation of it.
// Usage: npm ci --prefix schemas/check && node schemas/check/validate.mjs
// Prints one line per example and a closing "N passed, M failed"; exits 1
// on any failure.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const readJSON = (p) => JSON.parse(readFileSync(p, "utf8"));

const ajv = new Ajv2020({ strict: true, allErrors: false });
addFormats(ajv);
const types = new Map();
for (const f of readdirSync(join(root, "v1")).sort()) {
  const schema = readJSON(join(root, "v1", f));
  ajv.addSchema(schema);
  types.set(f.replace(/\.json$/, ""), schema.$id);
}
const envelopeID = types.get("envelope");

// validate picks the schema by event_type, as the Go decoder does, and
// returns null or the reported error as {pointer, keyword}.
function validate(doc) {
  const t = doc && typeof doc === "object" ? doc.event_type : undefined;
  const id = typeof t === "string" && t !== "envelope" && types.has(t) ? types.get(t) : envelopeID;
  const check = ajv.getSchema(id);
  if (check(doc)) return null;
  // With allErrors off ajv stops at the first failing keyword; an anyOf
  // lists its branches' errors first and its own last.
  const e = check.errors[check.errors.length - 1];
  let pointer = e.instancePath;
  if (e.keyword === "required") pointer += "/" + e.params.missingProperty;
  if (e.keyword === "additionalProperties") pointer += "/" + e.params.additionalProperty;
  return { pointer, keyword: e.keyword, message: e.message };
}

let passed = 0;
let failed = 0;
const report = (ok, line) => {
  ok ? passed++ : failed++;
  console.log((ok ? "ok   " : "FAIL ") + line);
};

const validDir = join(root, "examples", "valid");
for (const f of readdirSync(validDir).sort()) {
  const err = validate(readJSON(join(validDir, f)));
  report(err === null, `valid/${f}` + (err ? `: ${err.pointer}: ${err.keyword}: ${err.message}` : ""));
}

// canonical is the canonical encoding: sorted keys, no whitespace, and
// JSON.stringify's minimal escaping of strings.
function canonical(v) {
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v !== null && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}

const chains = new Map();
for (const f of readdirSync(validDir).sort()) {
  const ev = readJSON(join(validDir, f));
  const key = ev.session_id + "/" + ev.runner_id;
  if (!chains.has(key)) chains.set(key, []);
  chains.get(key).push({ f, ev });
}
for (const [key, evs] of chains) {
  evs.sort((a, b) => a.ev.seq - b.ev.seq);
  let prev = "0".repeat(64);
  const problems = [];
  evs.forEach(({ f, ev }, i) => {
    const { hash, ...rest } = ev;
    const got = createHash("sha256").update(prev + canonical(rest), "utf8").digest("hex");
    if (ev.seq !== i + 1) problems.push(`${f}: seq ${ev.seq}, want ${i + 1}`);
    if (ev.prev_hash !== prev) problems.push(`${f}: prev_hash does not link`);
    if (got !== hash) problems.push(`${f}: hash ${hash}, recomputed ${got}`);
    prev = hash;
  });
  report(problems.length === 0, `chain ${key}: ${evs.length} events` + (problems.length ? ": " + problems.join("; ") : ""));
}

const invalidDir = join(root, "examples", "invalid");
const manifest = readJSON(join(invalidDir, "manifest.json"));
const files = readdirSync(invalidDir).filter((f) => f !== "manifest.json").sort();
for (const f of files) {
  const want = manifest[f];
  if (!want) {
    report(false, `invalid/${f}: not in manifest.json`);
    continue;
  }
  const err = validate(readJSON(join(invalidDir, f)));
  if (err === null) {
    report(false, `invalid/${f}: passed, want ${want.pointer} ${want.keyword}`);
  } else {
    const ok = err.pointer === want.pointer && err.keyword === want.keyword;
    report(ok, `invalid/${f}: ${err.pointer} ${err.keyword}` + (ok ? "" : `, want ${want.pointer} ${want.keyword} (${err.message})`));
  }
}
for (const f of Object.keys(manifest)) {
  if (!files.includes(f)) report(false, `invalid/${f}: in manifest.json but missing`);
}

console.log(`ajv: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
