// Validates Kubernetes objects against the schemas of the npm packages
// kubernetes-models (core and built-in groups) and
// @kubernetes-models/prometheus-operator (monitoring.coreos.com), whose
// validate() comes from @kubernetes-models/validate.
//
//   node validate_models.mjs OBJECTS.json
//
// OBJECTS.json is a JSON array of {"source": "...", "object": {...}}. The
// packages are resolved from the node_modules beside this file: the test
// copies it into its npm cache directory and runs it there.
//
// Two checks per object:
//  1. validate(): types, enums, required fields, formats.
//  2. unknown fields. The schemas do not forbid extra properties, so a typo
//     such as `readinesProbe` would pass validate(). Each key of the object,
//     at every depth, is replaced in turn by a value no schema accepts (a
//     Symbol); a key the schema knows makes validate() report an error at
//     that path, a key it ignores makes none, and is reported as unknown.
//     Keys of maps (labels, data, limits) are typed by the schema's
//     additionalProperties, so they count as known.
//
// Prints one line per problem; exit status 0 when there is none, 1 when
// there is one, 2 on a usage or loading error.

import { readFileSync } from "node:fs";

const PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

function specifier(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const pkg = PACKAGES[group] ?? "kubernetes-models";
  return group === "" ? `${pkg}/${version}/${kind}` : `${pkg}/${group}/${version}/${kind}`;
}

async function modelClass(apiVersion, kind) {
  const spec = specifier(apiVersion, kind);
  let mod;
  try {
    mod = await import(spec);
  } catch (e) {
    return { error: `no model ${spec} (${e.code ?? e.message})` };
  }
  const cls = mod[kind];
  if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind)
    return { error: `${spec} does not export a model of ${apiVersion} ${kind}` };
  return { cls };
}

function validationErrors(cls, data) {
  try {
    new cls(data).validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    return e.errors;
  }
}

const pointer = (path) => path.map((p) => "/" + String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("");

// Every [path, key] of an object key, at every depth, arrays traversed.
function* keyPaths(value, path = []) {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* keyPaths(value[i], [...path, i]);
  } else if (value !== null && typeof value === "object") {
    for (const key of Object.keys(value)) {
      yield [...path, key];
      yield* keyPaths(value[key], [...path, key]);
    }
  }
}

function replaced(obj, path, v) {
  const copy = structuredClone(obj);
  let at = copy;
  for (const p of path.slice(0, -1)) at = at[p];
  at[path[path.length - 1]] = v;
  return copy;
}

async function main() {
  if (process.argv.length !== 3) {
    console.error("usage: node validate_models.mjs OBJECTS.json");
    process.exit(2);
  }
  const items = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const problems = [];
  let checked = 0;
  for (const { source, object } of items) {
    const where = `${source}: ${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
    const { cls, error } = await modelClass(object.apiVersion, object.kind);
    if (error) {
      problems.push(`${where}: ${error}`);
      continue;
    }
    const errs = validationErrors(cls, object);
    for (const e of errs) problems.push(`${where}: ${e.instancePath || "/"} ${e.message}`);
    if (errs.length > 0) continue;
    const probe = Symbol("probe");
    const unknown = [];
    for (const path of keyPaths(object)) {
      if (path.length === 1 && (path[0] === "apiVersion" || path[0] === "kind")) continue;
      const at = pointer(path);
      if (unknown.some((u) => at.startsWith(u + "/"))) continue;
      const hit = validationErrors(cls, replaced(object, path, probe)).some(
        (e) => e.instancePath === at || e.instancePath.startsWith(at + "/"),
      );
      if (!hit) {
        unknown.push(at);
        problems.push(`${where}: ${at}: unknown field (the schema ignores it)`);
      }
    }
    if (unknown.length === 0) checked++;
  }
  for (const p of problems) console.log(p);
  console.log(`${checked} of ${items.length} objects valid, ${problems.length} problems`);
  process.exit(problems.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  process.exit(2);
});
