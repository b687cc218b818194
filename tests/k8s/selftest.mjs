// The cross-checks can fail: each mutation below breaks one rule in a copy of a rendered
// overlay, and the checks (tests/k8s/check.mjs, `run`) must report exactly that rule. A checker
// that passes everything would pass the manifests too.
const find = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const container = (objs, kind, name) => find(objs, kind, name).spec.template.spec.containers[0];
const volume = (objs, kind, name, vol) => find(objs, kind, name).spec.template.spec.volumes.find((v) => v.name === vol);
const env = (c, name) => c.env.find((e) => e.name === name);
const dropFlag = (c, flag) => {
  const i = c.command.indexOf(flag);
  c.command.splice(i, 2);
};

const MUTATIONS = [
  ["broker with --allow-insecure", /--allow-insecure in the command/,
    (o) => container(o, "StatefulSet", "ecgq-broker").command.push("--allow-insecure", "true")],
  ["worker with ECGQ_ALLOW_INSECURE", /ECGQ_ALLOW_INSECURE in the environment/,
    (o) => container(o, "Deployment", "ecgq-worker").env.push({ name: "ECGQ_ALLOW_INSECURE", value: "true" })],
  ["broker without CURVE", /the broker without --curve-secret-cert/,
    (o) => dropFlag(container(o, "StatefulSet", "ecgq-broker"), "--curve-secret-cert")],
  ["gateway without --broker-key", /without --broker-key/,
    (o) => dropFlag(container(o, "Deployment", "ecgq-gateway"), "--broker-key")],
  ["broker probes without a key", /exec probes on a CURVE broker need ECGQ_CURVE_CERT/,
    (o) => { const c = container(o, "StatefulSet", "ecgq-broker"); c.env = c.env.filter((e) => e.name !== "ECGQ_CURVE_CERT"); }],
  ["worker cert not a key of its Secret", /Secret ecgq-curve-worker has no key missing.cert_secret/,
    (o) => { const c = container(o, "Deployment", "ecgq-worker"); c.command[c.command.indexOf("--curve-cert") + 1] = "/etc/ecgq/curve/worker/missing.cert_secret"; }],
  ["public certificate as --curve-cert", /a secret certificate \(NAME_secret/,
    (o) => { const c = container(o, "Deployment", "ecgq-worker"); c.command[c.command.indexOf("--curve-cert") + 1] = "/etc/ecgq/curve/worker/broker.cert"; }],
  ["key directory flag on a file", /--client-keys needs a directory/,
    (o) => { const c = container(o, "StatefulSet", "ecgq-broker"); c.command[c.command.indexOf("--client-keys") + 1] = "/etc/ecgq/curve/broker/broker.cert"; }],
  ["path on no volume", /is on no mounted volume and not in the image/,
    (o) => { env(container(o, "StatefulSet", "ecgq-broker"), "ECGQ_BROKER_KEY").value = "/etc/keys/broker.cert"; }],
  ["secret mount not read-only", /is not readOnly/,
    (o) => { container(o, "Deployment", "ecgq-worker").volumeMounts.find((m) => m.name === "curve-worker").readOnly = false; }],
  ["secret readable by others", /secret volume mode 444/,
    (o) => { volume(o, "Deployment", "ecgq-gateway", "tokens").secret.defaultMode = 0o444; }],
  ["unknown Secret", /Secret ecgq-nope is neither in the render/,
    (o) => { volume(o, "StatefulSet", "ecgq-broker", "curve-broker").secret.secretName = "ecgq-nope"; }],
  ["required Secret nobody makes", /secret ecgq-hub-token key HF_TOKEN does not exist/,
    (o) => { env(container(o, "Job", "ecgq-model-fetch"), "HF_TOKEN").valueFrom.secretKeyRef.optional = false; }],
  ["worker key not in worker_keys", /its key worker.cert_secret is not in the broker's worker_keys/,
    (o) => { delete find(o, "ConfigMap", "ecgq-curve-worker-keys").data["worker.cert"]; find(o, "ConfigMap", "ecgq-curve-worker-keys").data["other.cert"] = ""; }],
  ["secret key in an allow-list", /must hold public certificates only/,
    (o) => { find(o, "ConfigMap", "ecgq-curve-client-keys").data["gateway.cert_secret"] = ""; }],
  ["fixed worker threads", /threads 2: workers take 0/,
    (o) => { env(container(o, "Deployment", "ecgq-worker"), "ECGQ_THREADS").value = "2"; }],
  ["fractional worker CPU limit", /cpu limit 1500m: whole cores/,
    (o) => { const r = container(o, "Deployment", "ecgq-worker").resources; r.limits.cpu = "1500m"; r.requests.cpu = "1500m"; }],
  ["worker CPU request below its limit", /cpu request 500m differs from the limit/,
    (o) => { container(o, "Deployment", "ecgq-worker").resources.requests.cpu = "500m"; }],
];

// `run(objs)` runs the cross-checks on objects and returns the problems. Returns the number of
// mutations caught; reports through `fail` each one that was not.
export function selfTest(objs, run, fail) {
  let caught = 0;
  for (const [name, expected, mutate] of MUTATIONS) {
    const copy = structuredClone(objs);
    mutate(copy);
    const problems = run(copy);
    if (problems.some((p) => expected.test(p))) caught++;
    else fail("self-test", `mutation "${name}" was not reported as ${expected} (got: ${problems.slice(0, 2).join("; ") || "nothing"})`);
  }
  return caught;
}
export const MUTATION_COUNT = MUTATIONS.length;
