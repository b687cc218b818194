// The subset of kustomize that deploy/k8s uses, for the manifest check (no kustomize binary is
// available from Debian or npm here): resources (files and directories), components, patches
// (strategic merge, by apiVersion/kind/metadata.name; lists of objects with a name merge by
// name as kustomize does for containers, env, volumes, ports; other lists are replaced; null
// deletes a key) and images (name -> newName/newTag). Anything else in a kustomization is an
// error, so the manifests cannot drift into features this renderer would silently ignore.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const KNOWN = new Set(["apiVersion", "kind", "resources", "components", "patches", "images"]);

export function loadYamlDocs(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true });
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
