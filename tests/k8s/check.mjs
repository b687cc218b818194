// Validates deploy/k8s (scripts/check-k8s): every overlay rendered (tests/k8s/kustomize.mjs),
// every object against the official Kubernetes schemas (npm kubernetes-models) or KEDA's
// (@kubernetes-models/keda), strictly (a field the schema does not know is an error, as
// `kubeconform -strict`), and the cross-references no schema sees: selectors and labels, claims,
// config maps and secrets, ports, names, probes and commands against the image's programs;
// CURVE everywhere, mounted paths and modes, probe keys, threads (tests/k8s/security.mjs); with
// DIR, the pods' probes with real keys and programs (tests/k8s/pods.mjs).
//   node check.mjs --root REPO [--bin DIR]   (DIR: built ecgq binaries to read --help from)
// Prints one line "N objects in M renders valid, K cross-checks, PODS" and exits 0, or lists
// the problems and exits 1.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { build, splitImage } from "./kustomize.mjs";
import { securityChecks } from "./security.mjs";
import { keysAndProbes } from "./pods.mjs";
import { selfTest, MUTATION_COUNT } from "./selftest.mjs";

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ROOT = path.resolve(opt("--root") || ".");
const BIN = opt("--bin");
const K8S = path.join(ROOT, "deploy/k8s");
const DOCS = fs.readFileSync(path.join(ROOT, "docs/deploy.md"), "utf8");
const problems = [];
let checks = 0;
// Where problems go: `problems`, or a self-test's own list (runChecks).
let sink = problems;
const fail = (where, msg) => sink.push(`${where}: ${msg}`);
const check = (cond, where, msg) => {
  checks++;
  if (!cond) fail(where, msg);
  return cond;
};

// --- schemas -------------------------------------------------------------------------------
async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const spec = group === "keda.sh"
    ? `@kubernetes-models/keda/keda.sh/${version}/${kind}`
    : `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`;
  const mod = await import(spec);
  return mod[kind];
}

// Runs the schema's validator on a proxy that records which properties it reads; a property it
// never read is one the schema does not know (maps such as labels are enumerated, so any key of
// an enumerated object counts as known).
function strictUnknown(obj, validate) {
  const read = new WeakMap();
  const enumerated = new WeakSet();
  const wrap = (o) => {
    if (!o || typeof o !== "object") return o;
    read.set(o, read.get(o) || new Set());
    return new Proxy(o, {
      get(t, p, r) {
        if (typeof p === "string") read.get(t).add(p);
        return wrap(Reflect.get(t, p, r));
      },
      has(t, p) {
        if (typeof p === "string") read.get(t).add(p);
        return Reflect.has(t, p);
      },
      ownKeys(t) {
        enumerated.add(t);
        return Reflect.ownKeys(t);
      },
    });
  };
  validate(wrap(obj));
  const unknown = [];
  const walk = (o, at) => {
    if (!o || typeof o !== "object") return;
    if (Array.isArray(o)) return o.forEach((e, i) => walk(e, `${at}[${i}]`));
    for (const [k, v] of Object.entries(o)) {
      if (!enumerated.has(o) && !(read.get(o) || new Set()).has(k)) unknown.push(`${at}.${k}`);
      walk(v, `${at}.${k}`);
    }
  };
  walk(obj, "");
  return unknown;
}

async function validateSchema(obj, where) {
  let Model;
  try {
    Model = await modelFor(obj.apiVersion, obj.kind);
  } catch (e) {
    return fail(where, `no schema for ${obj.apiVersion} ${obj.kind} (${e.message.split("\n")[0]})`);
  }
  checks++;
  try {
    const m = new Model(structuredClone(obj));
    const unknown = strictUnknown(m, (p) => Model.prototype.validate.call(p));
    for (const u of unknown) fail(where, `field ${u.slice(1)} is not in the ${obj.kind} schema`);
  } catch (e) {
    fail(where, `schema: ${e.message.split("\n").slice(0, 3).join("; ")}`);
  }
}

// --- the image's programs ------------------------------------------------------------------
// Programs under /usr/local/bin in each image, from the Dockerfile: a stage has its own COPY
// lines and those of the stage it starts FROM. The image ecgq is the last stage; ecgq-NAME is
// the stage NAME (scripts/build-image: --target NAME).
function imagePrograms() {
  const text = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const shell = ["sh", "/bin/sh", "sleep", "echo", "exec", "until", "do", "done", "true"];
  const stages = new Map();
  let cur = null;
  let last = null;
  for (const line of text.split("\n")) {
    const from = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
    if (from) {
      const parent = stages.get(from[1]);
      cur = new Set(parent ? parent : shell);
      last = cur;
      if (from[2]) stages.set(from[2], cur);
      continue;
    }
    const m = line.match(/^COPY\s+(.*)\s+\/usr\/local\/bin\/(\S*)\s*$/);
    if (!m || !cur) continue;
    if (m[2]) cur.add(m[2]);
    else for (const src of m[1].split(/\s+/).filter((s) => !s.startsWith("--"))) cur.add(path.basename(src));
  }
  const images = new Map([["ecgq", last]]);
  for (const [name, progs] of stages) images.set(`ecgq-${name}`, progs);
  return images;
}
const IMAGES = imagePrograms();
const helpCache = new Map();
function help(prog, sub) {
  const k = `${prog} ${sub || ""}`;
  if (helpCache.has(k)) return helpCache.get(k);
  let exe = null;
  if (prog === "ecgq-healthcheck") exe = path.join(ROOT, "scripts/ecgq-healthcheck");
  else if (BIN && fs.existsSync(path.join(BIN, prog))) exe = path.join(BIN, prog);
  let text = null;
  if (exe) {
    try {
      text = execFileSync(exe, [...(sub ? [sub] : []), "--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      text = `${e.stdout || ""}${e.stderr || ""}`;
      if (e.status !== 0) text = null;
    }
  }
  helpCache.set(k, text);
  return text;
}
const SUBCOMMANDS = { "ecgq-worker": ["serve", "fetch", "infer", "inspect"], ecgq: ["submit", "status", "keygen"] };

// Checks one command line (argv, or the words of a `sh -c` script) of the image's programs.
function checkCommand(argv, where, image) {
  if (argv[0] === "/bin/sh" || argv[0] === "sh") {
    check(argv[1] === "-c" && typeof argv[2] === "string", where, "sh without -c SCRIPT");
    const words = (argv[2] || "").replace(/["';&|]/g, " ").split(/\s+/).filter(Boolean);
    words.forEach((w, i) => {
      if (/^ecgq/.test(w)) {
        const end = words.findIndex((x, j) => j > i && ["do", "done", "then", "fi", "echo", "sleep"].includes(x));
        checkCommand(words.slice(i, end < 0 ? undefined : end), `${where} (sh -c)`, image);
      }
    });
    return;
  }
  const prog = argv[0];
  const programs = IMAGES.get(image);
  if (!check(programs, where, `image ${image} is not built by the Dockerfile (ecgq or ecgq-STAGE)`)) return;
  if (!check(programs.has(prog), where, `${prog} is not a program of the image ${image} (Dockerfile)`)) return;
  if (!prog.startsWith("ecgq")) return;
  const sub = (SUBCOMMANDS[prog] || []).find((s) => argv.includes(s));
  if (SUBCOMMANDS[prog]) check(sub, where, `${prog} without a subcommand (${SUBCOMMANDS[prog].join(", ")})`);
  const texts = [help(prog), ...(sub ? [help(prog, sub)] : [])].filter((t) => t !== null);
  if (prog === "ecgq-healthcheck") {
    check(texts.length > 0, where, "scripts/ecgq-healthcheck --help failed");
    for (const a of argv.slice(1)) check(["auto", "ready", "live", "--pid"].includes(a) || /^\d+$/.test(a), where, `ecgq-healthcheck: unknown argument ${a}`);
    return;
  }
  if (texts.length < (sub ? 2 : 1)) {
    // No binaries to ask (or this one not built there): programs and subcommands only.
    if (!BIN || !fs.existsSync(path.join(BIN, prog))) return;
    return fail(where, `${prog} ${sub || ""} --help did not run from ${BIN}`);
  }
  for (const a of argv.slice(1)) {
    if (!a.startsWith("--")) continue;
    const flag = a.split("=")[0];
    check(texts.some((t) => new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, "\\-")}([\\s,=]|$)`, "m").test(t)), where,
      `${prog}${sub ? " " + sub : ""} has no option ${flag}`);
  }
}

// --- cross-references ----------------------------------------------------------------------
const podTemplate = (o) => (o.kind === "CronJob" ? o.spec?.jobTemplate?.spec?.template : o.spec?.template);
const matches = (sel, labels) => sel && Object.entries(sel).every(([k, v]) => labels?.[k] === v);
const WORKLOADS = new Set(["Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet"]);

function crossCheck(objs, render) {
  const by = (kind) => objs.filter((o) => o.kind === kind);
  const named = (kind, name) => objs.find((o) => o.kind === kind && o.metadata?.name === name);
  const workloads = objs.filter((o) => WORKLOADS.has(o.kind));
  const where = (o, extra = "") => `${render}: ${o.kind}/${o.metadata?.name}${extra}`;
  const pods = workloads.map((w) => ({ w, t: podTemplate(w) }));

  for (const o of objs) {
    check(o.metadata?.labels?.["app.kubernetes.io/part-of"] === "ecgq" || o.kind === "Kustomization", where(o), "no label app.kubernetes.io/part-of: ecgq");
  }
  for (const { w, t } of pods) {
    const spec = t?.spec || {};
    if (w.spec?.selector) {
      check(matches(w.spec.selector.matchLabels, t?.metadata?.labels), where(w), "selector.matchLabels do not match the pod template's labels");
    }
    const vols = new Map((spec.volumes || []).map((v) => [v.name, v]));
    const claimTemplates = new Set((w.spec?.volumeClaimTemplates || []).map((c) => c.metadata?.name));
    check(spec.securityContext?.runAsNonRoot === true, where(w), "pod securityContext.runAsNonRoot is not true");
    for (const v of vols.values()) {
      if (v.persistentVolumeClaim) check(named("PersistentVolumeClaim", v.persistentVolumeClaim.claimName), where(w, ` volume ${v.name}`), `claim ${v.persistentVolumeClaim.claimName} does not exist`);
      // Secret and ConfigMap volumes: tests/k8s/security.mjs (made here, or user-made and documented).
      // Secret files belong to root and to the pod's fsGroup: a mode without group read leaves
      // them unreadable by the non-root user.
      if (v.secret?.defaultMode !== undefined) check((v.secret.defaultMode & 0o040) !== 0 || spec.securityContext?.runAsUser === 0, where(w, ` volume ${v.name}`), `defaultMode ${v.secret.defaultMode.toString(8)} is unreadable by the pod's non-root user (fsGroup needs group read)`);
    }
    if (w.kind === "StatefulSet") {
      const svc = named("Service", w.spec.serviceName);
      check(svc && svc.spec?.clusterIP === "None", where(w), `serviceName ${w.spec.serviceName} is not a headless Service`);
    }
    for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
      const cw = where(w, ` container ${c.name}`);
      const image = path.basename(splitImage(c.image)[0]);
      check(IMAGES.has(image), cw, `image ${c.image} is not an ecgq image (${[...IMAGES.keys()].join(", ")})`);
      check(c.resources?.requests?.memory && c.resources?.limits?.memory && c.resources?.requests?.cpu, cw, "needs memory requests and limits and a cpu request");
      check(c.securityContext?.allowPrivilegeEscalation === false, cw, "allowPrivilegeEscalation is not false");
      for (const m of c.volumeMounts || []) {
        check(vols.has(m.name) || claimTemplates.has(m.name), cw, `volumeMount ${m.name} has no volume or claim template`);
        const v = vols.get(m.name);
        if (v?.persistentVolumeClaim?.readOnly) check(m.readOnly === true, cw, `mount of read-only claim ${m.name} is not readOnly`);
      }
      for (const e of c.envFrom || []) {
        if (e.configMapRef) check(named("ConfigMap", e.configMapRef.name), cw, `envFrom config map ${e.configMapRef.name} does not exist`);
        if (e.secretRef) check(named("Secret", e.secretRef.name), cw, `envFrom secret ${e.secretRef.name} does not exist`);
      }
      for (const e of c.env || []) {
        const s = e.valueFrom?.secretKeyRef;
        if (s) {
          const sec = named("Secret", s.name);
          check(sec ? s.key in { ...sec.data, ...sec.stringData } : s.optional === true && DOCS.includes(s.name), cw,
            `env ${e.name}: secret ${s.name} key ${s.key} does not exist (nor is it an optional Secret docs/deploy.md names)`);
        }
        const m = e.valueFrom?.configMapKeyRef;
        if (m) check(named("ConfigMap", m.name)?.data?.[m.key] !== undefined, cw, `env ${e.name}: config map ${m.name} key ${m.key} does not exist`);
      }
      checkCommand([...(c.command || []), ...(c.args || [])], cw, image);
      for (const p of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        if (!c[p]) continue;
        if (c[p].exec) checkCommand(c[p].exec.command, `${cw} ${p}`, image);
        const port = c[p].httpGet?.port ?? c[p].tcpSocket?.port;
        if (port !== undefined) check((c.ports || []).some((x) => x.name === port || x.containerPort === port), `${cw} ${p}`, `port ${port} is not a container port`);
      }
      if (c.name === "worker" || c.name === "broker") {
        check(c.readinessProbe && c.livenessProbe, cw, "needs readiness and liveness probes");
      }
      // Workers and producers name the broker's Service and port.
      const all = [...(c.command || []), ...(c.args || [])];
      const i = all.indexOf("--broker");
      if (i >= 0) {
        const m = /^tcp:\/\/([^:/]+):(\d+)$/.exec(all[i + 1] || "");
        const svc = m && named("Service", m[1]);
        check(svc && (svc.spec.ports || []).some((p) => p.port === Number(m[2])), cw, `--broker ${all[i + 1]} is not a Service port`);
      }
    }
  }
  securityChecks(objs, render, { check, ROOT, pods, where, named });
  // The broker's grace covers its shutdown_grace (5s default).
  for (const w of by("StatefulSet")) {
    check((podTemplate(w).spec.terminationGracePeriodSeconds || 30) > 5, where(w), "terminationGracePeriodSeconds not above the broker's shutdown_grace (5s)");
  }
  for (const s of by("Service")) {
    const targets = pods.filter(({ t }) => matches(s.spec.selector, t?.metadata?.labels));
    if (!check(targets.length > 0, where(s), "selector matches no pod template")) continue;
    for (const p of s.spec.ports || []) {
      const tp = p.targetPort ?? p.port;
      check(targets.every(({ t }) => t.spec.containers.some((c) => (c.ports || []).some((x) => x.name === tp || x.containerPort === tp))), where(s, ` port ${p.name}`), `targetPort ${tp} is not a container port of the selected pods`);
    }
  }
  for (const pdb of by("PodDisruptionBudget")) {
    check(pods.some(({ t }) => matches(pdb.spec.selector?.matchLabels, t?.metadata?.labels)), where(pdb), "selector matches no pod template");
  }
  for (const np of by("NetworkPolicy")) {
    const selected = pods.filter(({ t }) => matches(np.spec.podSelector?.matchLabels || {}, t?.metadata?.labels));
    check(selected.length > 0, where(np), "podSelector matches no pod template");
    for (const rule of np.spec.ingress || []) {
      for (const from of rule.from || []) {
        if (from.podSelector && !from.namespaceSelector) {
          check(pods.some(({ t }) => matches(from.podSelector.matchLabels, t?.metadata?.labels)), where(np), `ingress from ${JSON.stringify(from.podSelector.matchLabels)}: no pod template has these labels`);
        }
      }
      for (const p of rule.ports || []) {
        check(selected.every(({ t }) => t.spec.containers.some((c) => (c.ports || []).some((x) => x.containerPort === p.port || x.name === p.port))), where(np), `ingress port ${p.port} is not a container port of the selected pods`);
      }
    }
    for (const rule of np.spec.egress || []) {
      for (const to of rule.to || []) {
        if (to.podSelector && !to.namespaceSelector) {
          const dst = pods.filter(({ t }) => matches(to.podSelector.matchLabels, t?.metadata?.labels));
          check(dst.length > 0, where(np), `egress to ${JSON.stringify(to.podSelector.matchLabels)}: no pod template has these labels`);
          for (const p of rule.ports || []) check(dst.every(({ t }) => t.spec.containers.some((c) => (c.ports || []).some((x) => x.containerPort === p.port))), where(np), `egress port ${p.port} is not a container port of the destination`);
        }
      }
    }
  }
  // Who may reach the broker: every pod with a --broker argument carries the client label.
  const brokerPolicy = by("NetworkPolicy").find((np) => np.metadata.name === "ecgq-broker-ingress");
  if (check(brokerPolicy, render, "no NetworkPolicy ecgq-broker-ingress")) {
    const allowed = brokerPolicy.spec.ingress.flatMap((r) => (r.from || []).filter((f) => f.podSelector).map((f) => f.podSelector.matchLabels));
    for (const { w, t } of pods) {
      const talks = (t.spec.containers || []).some((c) => [...(c.command || []), ...(c.args || [])].includes("--broker"));
      if (talks) check(allowed.some((sel) => matches(sel, t.metadata.labels)), where(w), "talks to the broker but no ingress rule of ecgq-broker-ingress admits it");
    }
  }
  for (const so of [...by("ScaledObject"), ...by("HorizontalPodAutoscaler")]) {
    const ref = so.spec.scaleTargetRef;
    check(named(ref.kind || "Deployment", ref.name), where(so), `scaleTargetRef ${ref.kind || "Deployment"}/${ref.name} does not exist`);
    if (so.kind === "ScaledObject") {
      check(so.spec.minReplicaCount === 0, where(so), "minReplicaCount is not 0 (scale to zero)");
      for (const tr of so.spec.triggers || []) {
        if (tr.type === "prometheus") check(/ecgq_/.test(tr.metadata.query || ""), where(so), "prometheus trigger does not query an ecgq_ metric");
      }
    }
  }
}

// --- main ----------------------------------------------------------------------------------
const renders = [];
const overlays = fs.readdirSync(path.join(K8S, "overlays")).sort();
for (const o of overlays) renders.push({ name: `overlays/${o}`, dir: path.join(K8S, "overlays", o) });
// The HPA alternative: the fp32 overlay with components/hpa in place of components/keda, and
// the in-cluster producer example.
renders.push({
  name: "overlays/fp32 with components/hpa and submit-example",
  dir: path.join(K8S, "overlays/fp32"),
  components: ["../../components/hpa", "../../components/secrets", "../../components/submit-example"],
});
const files = new Map();
let objects = 0;
// The cross-checks on objects, their problems returned instead of reported (the self-test).
const runChecks = (objs) => {
  const [saved, counted] = [sink, checks];
  sink = [];
  try {
    crossCheck(objs, "mutated");
    return sink;
  } finally {
    [sink, checks] = [saved, counted];
  }
};
let caught = null;
for (const r of renders) {
  let objs;
  try {
    objs = build(r.dir, files, r.components || null);
  } catch (e) {
    fail(r.name, e.message);
    continue;
  }
  for (const o of objs) await validateSchema(o, `${r.name}: ${o.kind}/${o.metadata?.name}`);
  crossCheck(objs, r.name);
  objects += objs.length;
  if (r.name === "overlays/fp32") caught = selfTest(objs, runChecks, fail);
}
// Every YAML file under deploy/k8s is part of some render.
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
for (const f of walk(K8S).filter((f) => /\.ya?ml$/.test(f))) {
  const used = files.has(f) || renders.some((r) => fs.readFileSync(path.join(r.dir, "kustomization.yaml"), "utf8").includes(path.basename(f)) && path.dirname(f) === r.dir);
  check(used, path.relative(ROOT, f), "not used by any kustomization");
}
// The fp32 overlay with real keys and the real programs (tests/k8s/pods.mjs), when built.
const PROGRAMS = ["ecgq", "ecgq-broker", "ecgq-worker", "ecgq-gateway"];
let pods = "pods not run (no built ecgq programs: --bin DIR)";
if (BIN && PROGRAMS.every((p) => fs.existsSync(path.join(BIN, p)))) pods = await keysAndProbes({ ROOT, BIN, check, fail });
if (problems.length) {
  for (const p of problems) console.log(`FAIL ${p}`);
  console.log(`${problems.length} problems in ${objects} objects of ${renders.length} renders`);
  process.exit(1);
}
console.log(`${objects} objects in ${renders.length} renders valid (Kubernetes and KEDA schemas, strict), ${checks} cross-checks, ${caught} of ${MUTATION_COUNT} broken copies caught, ${pods}`);
