// The subset of kustomize that deploy/k8s uses, for the manifest check (no kustomize binary is
// available from Debian or npm here): resources (files and directories), components, patches
// (strategic merge, by apiVersion/kind/metadata.name; lists of objects with a name merge by
// name as kustomize does for containers, env, volumes, ports; other lists are replaced; null
// deletes a key) and images (name -> newName/newTag). Anything else in a kustomization is an
// error, so the manifests cannot drift into features this renderer would silently ignore.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const KNOWN = new Set(["apiVersion", "kind", "resources", "components", "patches", "images",
  "generatorOptions", "secretGenerator", "configMapGenerator"]);

export function loadYamlDocs(file) {
  const text = fs.readFileSync(file, "utf8");
  // YAML 1.1 as Kubernetes reads it (sigs.k8s.io/yaml): 0440 is octal, a file mode.
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, version: "1.1" });
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const v = d.toJS({ maxAliasCount: 0 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function kustomizationFile(dir) {
  for (const n of ["kustomization.yaml", "kustomization.yml", "Kustomization"]) {
    const f = path.join(dir, n);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`${dir}: no kustomization.yaml`);
}

const key = (o) => `${o.apiVersion}/${o.kind}/${o.metadata?.name}`;

function isNamedList(a) {
  return Array.isArray(a) && a.length > 0 &&
    a.every((e) => e && typeof e === "object" && !Array.isArray(e) && typeof e.name === "string");
}

export function merge(base, patch) {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) {
    if (isNamedList(patch) && isNamedList(base)) {
      const out = base.map((e) => structuredClone(e));
      for (const p of patch) {
        const i = out.findIndex((e) => e.name === p.name);
        if (i < 0) out.push(structuredClone(p));
        else out[i] = merge(out[i], p);
      }
      return out;
    }
    return structuredClone(patch);
  }
  if (patch && typeof patch === "object") {
    const out = base && typeof base === "object" && !Array.isArray(base) ? structuredClone(base) : {};
    for (const [k, v] of Object.entries(patch)) {
      const m = merge(out[k], v);
      if (m === undefined) delete out[k];
      else out[k] = m;
    }
    return out;
  }
  return patch;
}

function applyImages(obj, images) {
  const visit = (spec) => {
    for (const list of [spec?.containers, spec?.initContainers]) {
      for (const c of list || []) {
        const [name, tag] = splitImage(c.image);
        const rule = images.find((r) => r.name === name);
        if (!rule) continue;
        c.image = `${rule.newName || name}:${rule.newTag || tag || "latest"}`;
      }
    }
  };
  visit(obj.spec?.template?.spec);
  visit(obj.spec?.jobTemplate?.spec?.template?.spec);
}

export function splitImage(image) {
  const at = image.lastIndexOf(":");
  const slash = image.lastIndexOf("/");
  return at > slash ? [image.slice(0, at), image.slice(at + 1)] : [image, ""];
}

// The Secrets and ConfigMaps of secretGenerator and configMapGenerator. Names get no hash suffix
// (generatorOptions.disableNameSuffixHash must be true: this renderer does not rewrite references
// to hashed names). Files must lie inside the kustomization's directory (kustomize's load
// restrictor). A file that does not exist yet (made by scripts/k8s-keys) is rendered empty and
// recorded in `files` as "generated-missing", so that manifests can be checked without keys.
function generate(dir, k, files) {
  const opts = k.generatorOptions || {};
  for (const f of Object.keys(opts)) {
    if (!["disableNameSuffixHash", "labels"].includes(f)) throw new Error(`${dir}: generatorOptions.${f} is not supported by tests/k8s/kustomize.mjs`);
  }
  const gens = [...(k.secretGenerator || []).map((g) => ["Secret", g]), ...(k.configMapGenerator || []).map((g) => ["ConfigMap", g])];
  if (gens.length && opts.disableNameSuffixHash !== true) throw new Error(`${dir}: generators need generatorOptions.disableNameSuffixHash: true (tests/k8s/kustomize.mjs)`);
  return gens.map(([kind, g]) => {
    for (const f of Object.keys(g)) {
      if (!["name", "files", "type"].includes(f)) throw new Error(`${dir}: ${kind} generator field '${f}' is not supported by tests/k8s/kustomize.mjs`);
    }
    const data = {};
    for (const entry of g.files || []) {
      const eq = entry.indexOf("=");
      const [key, rel] = eq >= 0 ? [entry.slice(0, eq), entry.slice(eq + 1)] : [path.basename(entry), entry];
      const file = path.resolve(dir, rel);
      if (!file.startsWith(dir + path.sep)) throw new Error(`${dir}: generator file ${rel} is outside the kustomization's directory`);
      if (key in data) throw new Error(`${dir}: ${kind} ${g.name} has key ${key} twice`);
      const present = fs.existsSync(file);
      files.set(file, present ? "generated" : "generated-missing");
      const content = present ? fs.readFileSync(file) : Buffer.alloc(0);
      data[key] = kind === "Secret" ? content.toString("base64") : content.toString("utf8");
    }
    const obj = { apiVersion: "v1", kind, metadata: { name: g.name, labels: { ...(opts.labels || {}) } } };
    if (kind === "Secret") obj.type = g.type || "Opaque";
    obj.data = data;
    return obj;
  });
}

// Renders a kustomization (or component) directory into a list of objects; `files` collects
// every manifest file read, with its role ("resource" or "patch").
export function build(dir, files = new Map(), componentsOverride = null) {
  const kfile = kustomizationFile(dir);
  const [k] = loadYamlDocs(kfile);
  files.set(kfile, "kustomization");
  for (const field of Object.keys(k)) {
    if (!KNOWN.has(field)) throw new Error(`${kfile}: field '${field}' is not supported by tests/k8s/kustomize.mjs`);
  }
  if (k.kind === "Component" && k.patches) {
    throw new Error(`${kfile}: patches in a component are not supported by tests/k8s/kustomize.mjs`);
  }
  let objs = [];
  for (const r of k.resources || []) {
    const p = path.resolve(dir, r);
    if (fs.statSync(p).isDirectory()) objs.push(...build(p, files));
    else {
      files.set(p, "resource");
      objs.push(...loadYamlDocs(p));
    }
  }
  objs.push(...generate(dir, k, files));
  const components = componentsOverride || k.components || [];
  for (const c of components) {
    const cdir = path.resolve(dir, c);
    const [ck] = loadYamlDocs(kustomizationFile(cdir));
    if (ck.kind !== "Component") throw new Error(`${cdir}: listed as a component but kind is ${ck.kind}`);
    objs = applyLayer(cdir, ck, objs, build(cdir, files));
  }
  if (k.kind === "Component") return objs;
  return applyLayer(dir, k, objs, []);
}

function applyLayer(dir, k, objs, added) {
  let out = [...objs, ...added];
  const seen = new Set();
  for (const o of out) {
    if (seen.has(key(o))) throw new Error(`${dir}: ${key(o)} defined twice`);
    seen.add(key(o));
  }
  for (const p of k.kind === "Component" ? [] : k.patches || []) {
    if (!p.path || p.target || p.patch) throw new Error(`${dir}: only 'patches: - path: FILE' is supported`);
    const pfile = path.resolve(dir, p.path);
    for (const patch of loadYamlDocs(pfile)) {
      const i = out.findIndex((o) => key(o) === key(patch));
      if (i < 0) throw new Error(`${pfile}: patch target ${key(patch)} not found`);
      out[i] = merge(out[i], patch);
    }
  }
  if (k.images) for (const o of out) applyImages(o, k.images);
  return out;
}
