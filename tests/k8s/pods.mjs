// The manifests with real keys and real programs (tests/k8s/check.mjs, when built binaries are
// given): scripts/k8s-keys makes the keys into a copy of deploy/k8s, the fp32 overlay is rendered
// from it (every file components/secrets reads must have been made), the key material is
// compared (each Secret's broker.cert is the broker's key, each peer's key is in its role's
// allow-list), then the broker, a worker, the gateway and the producer example run on 127.0.0.1 with the command lines,
// environment and mounted files of their pod templates (paths under a temporary root, ports
// free ones), and the pods' own probes must pass: ecgq-healthcheck authenticates over CURVE with
// the probe key (broker) and the worker key (worker), and a probe with an unknown key fails.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import http from "node:http";
import crypto from "node:crypto";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { build } from "./kustomize.mjs";
import { flagValue } from "./security.mjs";

const publicKey = (text) => /public-key = "([^"]{40})"/.exec(text)?.[1];
const fingerprint = (z85) => crypto.createHash("sha256").update(z85).digest("hex").slice(0, 16);
const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = s.address();
    s.close(() => res(port));
  });
});
const content = (o, k) => (o.kind === "Secret" ? Buffer.from(o.data[k], "base64").toString("utf8") : o.data[k]);

// Polls `probe` (returns true when done) every 200 ms until `seconds` pass; the time it took.
async function pollUntil(seconds, probe) {
  const start = Date.now();
  while (Date.now() - start < seconds * 1000) {
    if (await probe()) return (Date.now() - start) / 1000;
    await new Promise((r) => setTimeout(r, 200));
  }
  return null;
}

// Run as root, the pods' processes run as their securityContext's user and group, and volume
// files belong to root and the pod's fsGroup as the kubelet makes them: a Secret mode the
// non-root user cannot read fails here as it would in the cluster.
// (Only where that user can reach the programs and the repository's files: else as root.)
let AS_ROOT = process.getuid?.() === 0;
const owner = (t) => {
  const sc = t.spec.securityContext || {};
  return AS_ROOT ? { uid: sc.runAsUser ?? 0, gid: sc.runAsGroup ?? sc.fsGroup ?? 0, fsGroup: sc.fsGroup ?? 0 } : {};
};

// A pod's container as a local process: its Secret and ConfigMap volumes written under `root`
// with their modes (owner root, group fsGroup), its other volumes as fsGroup directories, its
// paths and endpoints rewritten.
function materialize(root, t, c, objs, rewrite) {
  const { fsGroup } = owner(t);
  const vols = new Map((t.spec.volumes || []).map((v) => [v.name, v]));
  const mounts = [...(c.volumeMounts || [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
  for (const m of c.volumeMounts || []) {
    const dir = path.join(root, m.mountPath);
    fs.mkdirSync(dir, { recursive: true });
    const v = vols.get(m.name); // none: a claim template (the broker's journal)
    const src = v?.secret || v?.configMap;
    if (AS_ROOT) fs.chownSync(dir, 0, fsGroup);
    fs.chmodSync(dir, src ? 0o755 : 0o2775);
    if (!src) continue;
    const o = objs.find((x) => x.kind === (v.secret ? "Secret" : "ConfigMap") && x.metadata.name === (v.secret ? v.secret.secretName : v.configMap.name));
    for (const k of Object.keys(o.data)) {
      fs.writeFileSync(path.join(dir, k), content(o, k));
      if (AS_ROOT) fs.chownSync(path.join(dir, k), 0, fsGroup);
      fs.chmodSync(path.join(dir, k), src.defaultMode ?? 0o644);
    }
  }
  const mapPath = (p) => {
    if (typeof p !== "string" || !p.startsWith("/")) return rewrite(p);
    if (mounts.some((m) => p === m.mountPath || p.startsWith(m.mountPath + "/"))) return path.join(root, p);
    if (p.startsWith("/etc/ecgq/")) return path.join(ROOT_DIR, "config", p.slice("/etc/ecgq/".length));
    if (p.startsWith("/opt/ecgq/data/")) return path.join(ROOT_DIR, "data", p.slice("/opt/ecgq/data/".length));
    return p;
  };
  const env = {};
  for (const e of c.env || []) env[e.name] = e.value !== undefined ? mapPath(e.value) : e.valueFrom?.fieldRef ? `${c.name}-pod` : "";
  for (const ef of c.envFrom || []) {
    const cm = objs.find((x) => x.kind === "ConfigMap" && x.metadata.name === ef.configMapRef?.name);
    for (const [k, v] of Object.entries(cm?.data || {})) env[k] ??= mapPath(v);
  }
  return { args: [...(c.command || []), ...(c.args || [])].map(mapPath), env };
}
let ROOT_DIR = "";

export async function keysAndProbes({ ROOT, BIN, check, fail }) {
  ROOT_DIR = ROOT;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ecgq-k8s-pods."));
  const procs = [];
  try {
    const made = makeKeys(ROOT, BIN, tmp, check);
    if (!made) return "";
    keyMaterial(made.objs, made.keys, check);
    return await runPods({ ROOT, BIN, tmp, procs, check, ...made });
  } catch (e) {
    fail("pods", e.stack || e.message);
    return "";
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => {
      const t = setTimeout(() => { p.kill("SIGKILL"); r(); }, 10000);
      p.on("exit", () => { clearTimeout(t); r(); });
    }))));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// scripts/k8s-keys into a copy of deploy/k8s: it must make every file the secretGenerator reads,
// and print kubectl commands for exactly the Secrets and ConfigMaps the component makes.
function makeKeys(ROOT, BIN, tmp, check) {
  fs.cpSync(path.join(ROOT, "deploy"), path.join(tmp, "deploy"), { recursive: true, filter: (s) => !s.endsWith(`${path.sep}keys`) });
  const keys = path.join(tmp, "deploy/k8s/components/secrets/keys");
  const made = spawnSync(path.join(ROOT, "scripts/k8s-keys"), ["--dir", keys, "--namespace", "ecgq"], { env: { ...process.env, ECGQ_BIN: path.join(BIN, "ecgq") }, encoding: "utf8" });
  if (!check(made.status === 0, "scripts/k8s-keys", `failed: ${made.stderr}`)) return null;
  const files = new Map();
  const objs = build(path.join(tmp, "deploy/k8s/overlays/fp32"), files, ["../../components/keda", "../../components/secrets", "../../components/submit-example"]);
  const missing = [...files].filter(([, role]) => role === "generated-missing").map(([f]) => path.relative(tmp, f));
  check(missing.length === 0, "scripts/k8s-keys", `did not make ${missing.join(", ")}, which components/secrets reads`);
  const generated = objs.filter((o) => (o.kind === "Secret" || o.kind === "ConfigMap") && (o.metadata.name.startsWith("ecgq-curve") || o.metadata.name === "ecgq-gateway-tokens"));
  const printed = [...made.stdout.matchAll(/create (secret generic|configmap) (\S+)/g)].map((m) => m[2]).sort();
  check(JSON.stringify(printed) === JSON.stringify(generated.map((o) => o.metadata.name).sort()), "scripts/k8s-keys", `prints kubectl commands for ${printed} but components/secrets makes ${generated.map((o) => o.metadata.name)}`);
  return { objs, keys };
}

// The key material: one broker key everywhere, every peer's key in its role's allow-list.
function keyMaterial(objs, keys, check) {
  const named = (kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const brokerKey = publicKey(content(named("Secret", "ecgq-curve-broker"), "broker.cert_secret"));
  const list = (r) => named("ConfigMap", `ecgq-curve-${r}-keys`);
  const lists = Object.fromEntries(["client", "worker", "admin"].map((r) => [r, new Set(Object.keys(list(r).data).map((k) => publicKey(content(list(r), k))))]));
  for (const s of objs.filter((o) => o.kind === "Secret" && o.metadata.name.startsWith("ecgq-curve-"))) {
    for (const k of Object.keys(s.data)) {
      const text = content(s, k);
      if (k === "broker.cert") check(publicKey(text) === brokerKey && !/secret-key/.test(text), `Secret/${s.metadata.name}`, "broker.cert is not the broker's public certificate");
      if (!k.endsWith("_secret") || k === "broker.cert_secret") continue;
      check(/secret-key = "/.test(text), `Secret/${s.metadata.name}`, `${k} holds no secret key`);
      const role = k.startsWith("worker") ? "worker" : "client";
      check(lists[role].has(publicKey(text)), `Secret/${s.metadata.name}`, `${k}'s public key is not in ecgq-curve-${role}-keys`);
    }
  }
  check(lists.admin.has(publicKey(fs.readFileSync(path.join(keys, "admin.cert_secret"), "utf8"))), "scripts/k8s-keys", "admin.cert_secret is not in ecgq-curve-admin-keys");
}

// The pods as processes, and their own probes.
async function runPods({ ROOT, BIN, tmp, procs, check, objs, keys }) {
  const named = (kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const pod = (kind, name) => named(kind, name).spec.template;
  if (AS_ROOT) {
    const { uid, gid } = owner(pod("StatefulSet", "ecgq-broker"));
    const reach = [path.join(BIN, "ecgq-worker"), path.join(ROOT, "config/broker.yaml"), path.join(ROOT, "scripts/ecgq-healthcheck"), path.join(ROOT, "data/models/demo-random-weights-tiny.pt")];
    AS_ROOT = spawnSync("/bin/sh", ["-c", reach.map((f) => `[ -r '${f}' ]`).join(" && ")], { uid, gid }).status === 0;
  }
  const [zmq, metrics, http8080] = [await freePort(), await freePort(), await freePort()];
  const rewrite = (a) => (typeof a !== "string" ? a : a.replace("tcp://*:5555", `tcp://127.0.0.1:${zmq}`)
    .replace("tcp://ecgq-broker:5555", `tcp://127.0.0.1:${zmq}`).replace("0.0.0.0:9090", `127.0.0.1:${metrics}`)
    .replace("0.0.0.0:8080", `127.0.0.1:${http8080}`));
  const PATH = `${BIN}:${path.join(ROOT, "scripts")}:${process.env.PATH}`;
  fs.chmodSync(tmp, 0o755);
  const start = (name, t, c, extraEnv = {}) => {
    const { args, env } = materialize(path.join(tmp, "root", name), t, c, objs, rewrite);
    const log = path.join(tmp, `${name}.log`);
    const user = owner(t);
    const home = path.join(tmp, "home", name);
    fs.mkdirSync(home, { recursive: true });
    if (AS_ROOT) fs.chownSync(home, user.uid, user.gid);
    const penv = { PATH, HOME: home, ...env, ...extraEnv };
    const p = spawn(args[0], args.slice(1), { env: penv, uid: user.uid, gid: user.gid, stdio: ["ignore", fs.openSync(log, "w"), fs.openSync(log, "a")] });
    procs.push(p);
    return { p, env: penv, log, c, user };
  };
  // The kubelet runs an exec probe in the container: its user, its environment.
  const probe = (proc, which, envOverride = {}) => {
    const cmd = proc.c[which].exec.command;
    const r = spawnSync(cmd[0], [...cmd.slice(1), "--pid", String(proc.p.pid)], { env: { ...proc.env, ECGQ_HEALTH_TIMEOUT: "2s", ...envOverride }, uid: proc.user.uid, gid: proc.user.gid, encoding: "utf8", timeout: 20000 });
    return r.status === 0;
  };
  const bt = pod("StatefulSet", "ecgq-broker");
  const broker = start("broker", bt, bt.spec.containers[0]);
  const brokerReady = await pollUntil(30, () => probe(broker, "readinessProbe"));
  if (!check(brokerReady !== null, "broker pod", `readinessProbe never passed: ${fs.readFileSync(broker.log, "utf8").split("\n").slice(-5).join(" | ")}`)) return "";
  check(probe(broker, "livenessProbe"), "broker pod", "livenessProbe fails");
  const probeFp = fingerprint(publicKey(fs.readFileSync(path.join(keys, "probe.cert"), "utf8")));
  check(fs.readFileSync(broker.log, "utf8").includes(`event=peer_admitted key=${probeFp} roles=client`), "broker pod", `no peer_admitted line for the probe key ${probeFp}: the probe did not authenticate as a client`);
  // A probe with a key in no allow-list must fail: the check really goes through CURVE.
  execFileSync(path.join(BIN, "ecgq"), ["keygen", path.join(tmp, "stranger.cert")], { stdio: "ignore" });
  if (AS_ROOT) fs.chownSync(path.join(tmp, "stranger.cert_secret"), broker.user.uid, broker.user.gid);
  check(!probe(broker, "readinessProbe", { ECGQ_CURVE_CERT: path.join(tmp, "stranger.cert_secret") }), "broker pod", "readinessProbe passes with a key in no allow-list");

  const wt = pod("Deployment", "ecgq-worker");
  const worker = start("worker", wt, wt.spec.containers[0], { ECGQ_CHECKPOINT: path.join(ROOT, "data/models/demo-random-weights-tiny.pt") });
  const workerLive = await pollUntil(60, () => probe(worker, "startupProbe"));
  const workerReady = workerLive !== null && await pollUntil(90, () => probe(worker, "readinessProbe"));
  check(workerReady !== null && workerReady !== false, "worker pod", `readinessProbe never passed: ${fs.readFileSync(worker.log, "utf8").split("\n").slice(-5).join(" | ")}`);
  check(probe(worker, "livenessProbe"), "worker pod", "livenessProbe fails");

  const gt = pod("Deployment", "ecgq-gateway");
  const gateway = start("gateway", gt, gt.spec.containers[0]);
  // /health is 200 only when the gateway reached the broker (its client key) and a worker is ready.
  const get = (p) => new Promise((res) => http.get({ host: "127.0.0.1", port: http8080, path: p, timeout: 3000 }, (r) => { r.resume(); res(r.statusCode); }).on("error", () => res(0)));
  const gatewayUp = await pollUntil(30, async () => (await get("/health")) === 200);
  check(gatewayUp !== null, "gateway pod", `GET /health never 200 (its CURVE key or tokens): ${fs.readFileSync(gateway.log, "utf8").split("\n").slice(-5).join(" | ")}`);
  check((await get(gt.spec.containers[0].readinessProbe.httpGet.path)) === 200, "gateway pod", "its readinessProbe path is not 200");
  check(flagValue(gateway.c.command, "--tokens") !== undefined, "gateway pod", "runs without tokens");

  // The producer example submits the demo records with its client key: every one comes back ok.
  const jt = named("Job", "ecgq-submit-example").spec.template;
  const job = start("submit", jt, jt.spec.containers[0]);
  const code = await new Promise((r) => {
    if (job.p.exitCode !== null) return r(job.p.exitCode);
    const deadline = setTimeout(() => job.p.kill("SIGKILL"), 60000); // a hung submit fails the check
    job.p.on("exit", (c) => { clearTimeout(deadline); r(c); });
  });
  const rows = fs.readFileSync(job.log, "utf8").split("\n").filter((l) => l.startsWith("{"));
  const ok = rows.filter((l) => JSON.parse(l).status === "ok").length;
  check(code === 0 && ok > 0 && ok === rows.length, "submit-example job", `exit ${code}, ${ok} of ${rows.length} records ok`);
  return `pods${AS_ROOT ? ` as uid ${broker.user.uid}` : ""} with keys from scripts/k8s-keys: broker ready in ${brokerReady.toFixed(1)} s, worker ready in ${(workerLive + (workerReady || 0)).toFixed(1)} s, gateway /health in ${gatewayUp?.toFixed(1)} s, unknown probe key refused, submit-example ${ok}/${rows.length} ok`;
}
