// The security and sizing cross-checks of deploy/k8s (tests/k8s/check.mjs calls them per render):
// CURVE on everywhere and no insecure switch, every path a program is given lies on a mounted
// volume (and names a key of its Secret or ConfigMap) or in the image, secret files are readable
// by the pod's group only, each probe authenticates with a key an allow-list admits, and the
// workers' thread count follows their CPU limit.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

// Flags whose value is a directory (the rest name files).
const DIR_FLAGS = new Set(["--client-keys", "--worker-keys", "--admin-keys", "--upload-dir"]);
// Flags and environment variables that name a CURVE secret certificate / a public one.
const SECRET_CERT = new Set(["--curve-secret-cert", "--curve-cert", "ECGQ_CURVE_CERT", "ECGQ_CURVE_SECRET_CERT"]);
const PUBLIC_CERT = new Set(["--broker-key", "ECGQ_BROKER_KEY"]);
const KEY_DIRS = { "--client-keys": "client", "--worker-keys": "worker", "--admin-keys": "admin" };
// Where the image keeps files (Dockerfile: COPY config /etc/ecgq, COPY data /opt/ecgq/data).
const IMAGE_DIRS = [["/etc/ecgq/", "config/"], ["/opt/ecgq/data/", "data/"]];

// The certificates each container is given, by flag or env name: { key, obj }.
const CERTS = new WeakMap();
const argv = (c) => [...(c.command || []), ...(c.args || [])];
// --name VALUE or --name=VALUE in a command line.
export function flagValue(args, name) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (typeof args[i] === "string" && args[i].startsWith(name + "=")) return args[i].slice(name.length + 1);
  }
  return undefined;
}
const envValue = (c, name) => (c.env || []).find((e) => e.name === name && e.value !== undefined)?.value;
const keysOf = (o) => Object.keys({ ...(o?.data || {}), ...(o?.stringData || {}) });

// The settings a program takes from its flags, its env and the config file (/etc/ecgq/X.yaml
// from config/X.yaml); env names are ECGQ_ + the setting in capitals.
function configFile(ROOT, args) {
  const cfg = flagValue(args, "--config");
  const img = cfg && IMAGE_DIRS.find(([p]) => cfg.startsWith(p));
  if (!img) return {};
  const file = path.join(ROOT, img[1], cfg.slice(img[0].length));
  return fs.existsSync(file) ? YAML.parse(fs.readFileSync(file, "utf8")) || {} : {};
}

// Each path a container is given: [source (flag or env name), value].
function pathsOf(c, named) {
  const out = [];
  const args = argv(c);
  if (args[0] === "/bin/sh" || args[0] === "sh") return out;
  args.forEach((a, i) => {
    if (typeof a !== "string") return;
    if (a.startsWith("--") && a.includes("=") && a.split("=")[1].startsWith("/")) out.push([a.split("=")[0], a.split("=")[1]]);
    else if (a.startsWith("/") && i > 0 && args[i - 1].startsWith("--")) out.push([args[i - 1], a]);
  });
  for (const e of c.env || []) if (typeof e.value === "string" && e.value.startsWith("/")) out.push([e.name, e.value]);
  for (const ef of c.envFrom || []) {
    const cm = ef.configMapRef && named("ConfigMap", ef.configMapRef.name);
    for (const [k, v] of Object.entries(cm?.data || {})) if (v.startsWith("/")) out.push([k, v]);
  }
  return out;
}

export function securityChecks(objs, render, ctx) {
  const { check, ROOT, pods, where, named } = ctx;
  const docs = fs.readFileSync(path.join(ROOT, "docs/deploy.md"), "utf8");
  const brokers = [];
  for (const { w, t } of pods) {
    const spec = t?.spec || {};
    const vols = new Map((spec.volumes || []).map((v) => [v.name, v]));
    for (const v of vols.values()) {
      const src = v.secret || v.configMap;
      if (!src) continue;
      const vw = where(w, ` volume ${v.name}`);
      const kind = v.secret ? "Secret" : "ConfigMap";
      const name = v.secret ? v.secret.secretName : v.configMap.name;
      // A Secret or ConfigMap the render does not make is one the user makes: only optional
      // ones, and docs/deploy.md must say so.
      check(named(kind, name) || (src.optional === true && docs.includes(name)), vw,
        `${kind} ${name} is neither in the render nor an optional one documented in docs/deploy.md`);
      const mode = src.defaultMode ?? 0o644;
      if (v.secret) check((mode & 0o007) === 0 && (mode & 0o040) !== 0, vw, `secret volume mode ${mode.toString(8)}: group read and nothing for others (0440)`);
    }
    for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
      const cw = where(w, ` container ${c.name}`);
      const args = argv(c);
      const settings = { ...configFile(ROOT, args) };
      // No plaintext switch anywhere: not as a flag, not in the environment, not in the config.
      check(!args.some((a) => typeof a === "string" && /allow[-_]insecure/.test(a)), cw, "--allow-insecure in the command");
      check(!(c.env || []).some((e) => e.name === "ECGQ_ALLOW_INSECURE"), cw, "ECGQ_ALLOW_INSECURE in the environment");
      check(settings.allow_insecure !== true, cw, "allow_insecure: true in its --config file");
      const mounts = [...(c.volumeMounts || [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
      const certs = {};
      for (const [source, value] of pathsOf(c, named)) {
        const pw = `${cw} ${source} ${value}`;
        const m = mounts.find((x) => value === x.mountPath || value.startsWith(x.mountPath.replace(/\/$/, "") + "/"));
        if (!m) {
          const img = IMAGE_DIRS.find(([p]) => value.startsWith(p));
          check(img && fs.existsSync(path.join(ROOT, img[1], value.slice(img[0].length))), pw, "is on no mounted volume and not in the image");
          continue;
        }
        const v = vols.get(m.name);
        if (!v?.secret && !v?.configMap) continue; // emptyDir, claims: written at run time
        check(m.readOnly === true, pw, `the mount of ${m.name} is not readOnly`);
        const kind = v.secret ? "Secret" : "ConfigMap";
        const obj = named(kind, v.secret ? v.secret.secretName : v.configMap.name);
        if (value === m.mountPath) {
          check(DIR_FLAGS.has(source), pw, `${source} names a file, but ${value} is the directory of ${kind} ${obj?.metadata?.name}`);
          if (obj) check(keysOf(obj).length > 0, pw, `${kind} ${obj.metadata.name} holds no certificate`);
          if (obj) check(keysOf(obj).every((k) => !k.endsWith("_secret")), pw, `${kind} ${obj.metadata.name} must hold public certificates only`);
          continue;
        }
        const key = value.slice(m.mountPath.replace(/\/$/, "").length + 1);
        check(!DIR_FLAGS.has(source), pw, `${source} needs a directory`);
        if (obj) check(keysOf(obj).includes(key), pw, `${kind} ${obj.metadata.name} has no key ${key} (${keysOf(obj).join(", ")})`);
        if (SECRET_CERT.has(source)) check(key.endsWith("_secret") && v.secret, pw, "a secret certificate (NAME_secret from ecgq keygen) in a Secret");
        if (PUBLIC_CERT.has(source)) check(!key.endsWith("_secret"), pw, "the broker's public certificate, not a secret one");
        certs[source] = { key, obj };
      }
      const prog = args[0];
      if (prog === "ecgq-broker") {
        brokers.push({ w, c, cw });
        for (const f of ["--curve-secret-cert", "--client-keys", "--worker-keys"]) check(flagValue(args, f), cw, `the broker without ${f} (CURVE with roles, docs/security.md)`);
        // The probes (ecgq-healthcheck) ask mmi.status over CURVE only with a key of their own.
        const probes = ["readinessProbe", "livenessProbe", "startupProbe"].filter((p) => c[p]?.exec);
        if (probes.length) check(envValue(c, "ECGQ_CURVE_CERT") && envValue(c, "ECGQ_BROKER_KEY"), cw, "exec probes on a CURVE broker need ECGQ_CURVE_CERT and ECGQ_BROKER_KEY (else ecgq-healthcheck only sees the port open)");
      }
      if (flagValue(args, "--broker")) {
        for (const [f, e] of [["--curve-cert", "ECGQ_CURVE_CERT"], ["--broker-key", "ECGQ_BROKER_KEY"]]) {
          check(flagValue(args, f) || envValue(c, e), cw, `talks to the broker without ${f} (or ${e}): the broker admits CURVE peers only`);
        }
      }
      if (prog === "ecgq-worker" && args.includes("serve")) workerThreads(c, cw, check, settings);
      CERTS.set(c, certs);
    }
  }
  check(brokers.length > 0, render, "no ecgq-broker container");
  for (const b of brokers) allowListChecks(b, pods, check, named, where);
}

// Every key a peer (or a probe) connects with is in the allow-list of the role it needs: workers
// in worker_keys, other programs in client_keys, the broker's own probe key in any list. Keys
// are matched by file name here (NAME_secret -> NAME); check.mjs compares the key material when
// scripts/k8s-keys made real keys.
function allowListChecks({ w, c, cw }, pods, check, named, where) {
  const args = argv(c);
  const lists = {};
  for (const [flag, role] of Object.entries(KEY_DIRS)) {
    const dir = flagValue(args, flag);
    const m = dir && (c.volumeMounts || []).find((x) => x.mountPath === dir);
    const v = m && (podVolumes(w).get(m.name));
    const obj = v && named(v.secret ? "Secret" : "ConfigMap", v.secret ? v.secret.secretName : v.configMap?.name);
    lists[role] = new Set(obj ? keysOf(obj) : []);
  }
  const admitted = (cert, roles) => roles.some((r) => lists[r]?.has(cert.key.replace(/_secret$/, "")));
  const probeCert = CERTS.get(c)?.ECGQ_CURVE_CERT;
  if (probeCert) check(admitted(probeCert, ["client", "worker", "admin"]), cw, `its probe key ${probeCert.key} is in no allow-list`);
  for (const { w: pw, t } of pods) {
    for (const pc of t?.spec?.containers || []) {
      const cert = CERTS.get(pc)?.["--curve-cert"] || CERTS.get(pc)?.ECGQ_CURVE_CERT;
      if (!cert || pc === c) continue;
      const worker = argv(pc)[0] === "ecgq-worker";
      check(admitted(cert, worker ? ["worker"] : ["client"]), where(pw, ` container ${pc.name}`),
        `its key ${cert.key} is not in the broker's ${worker ? "worker_keys" : "client_keys"}`);
    }
  }
}
const podVolumes = (w) => new Map(((w.kind === "CronJob" ? w.spec.jobTemplate.spec.template : w.spec.template).spec.volumes || []).map((v) => [v.name, v]));

// threads 0 means "the CPUs this process may use, the cgroup's CPU quota included": a worker's
// thread count follows its CPU limit, which must therefore exist, be whole cores and equal the
// request (the CPU the scheduler reserves is the CPU the threads use). A fixed thread count
// would not follow the limit.
function workerThreads(c, cw, check, settings) {
  const threads = flagValue(argv(c), "--threads") ?? envValue(c, "ECGQ_THREADS") ?? settings.threads ?? 0;
  check(String(threads) === "0", cw, `threads ${threads}: workers take 0 (the CPU limit decides), not a fixed count`);
  const lim = c.resources?.limits?.cpu;
  const req = c.resources?.requests?.cpu;
  check(lim !== undefined && /^[1-9][0-9]*$/.test(String(lim)), cw, `cpu limit ${lim}: whole cores (it is the worker's thread count)`);
  check(String(req) === String(lim), cw, `cpu request ${req} differs from the limit ${lim}`);
}
