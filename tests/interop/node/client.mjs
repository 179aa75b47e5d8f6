// A reelcast client in Node.js, built only from proto/ (no generated code): it creates a job, watches it to
// its terminal event, then resumes a second watch after a middle sequence. Every event is printed as one
// JSON line, so that the Python interop test can compare the sequences with what its own client saw.
//
//   node client.mjs --target 127.0.0.1:50051 [--topic TEXT] [--after N] [--token KEY] [--correlation-id ID]
//
// Lines: {"phase":"created","jobId":...}, {"phase":"watch"|"resume","sequence":N,"kind":...,...},
// {"phase":"resumed-from","afterSequence":N} and finally {"phase":"done"}.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../proto");
const TERMINAL_KINDS = new Set(["EVENT_KIND_JOB_COMPLETED", "EVENT_KIND_JOB_FAILED"]);

const { values: options } = parseArgs({
  options: {
    target: { type: "string" },
    topic: { type: "string", default: "Why the sky is blue" },
    after: { type: "string" },
    token: { type: "string", default: process.env.REELCAST_TOKEN ?? "" },
    "correlation-id": { type: "string", default: `node-interop-${process.pid}` },
    "deadline-seconds": { type: "string", default: "60" },
  },
});
if (!options.target) {
  console.error("usage: node client.mjs --target HOST:PORT [--topic TEXT] [--after N] [--token KEY]");
  process.exit(2);
}

const definition = protoLoader.loadSync("reelcast/jobs/v1/job_service.proto", {
  includeDirs: [PROTO_ROOT],
  // int64 sequences as decimal strings: exact, whatever their size.
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { JobService } = grpc.loadPackageDefinition(definition).reelcast.jobs.v1;
const client = new JobService(options.target, grpc.credentials.createInsecure());

function callMetadata() {
  const metadata = new grpc.Metadata();
  metadata.set("x-correlation-id", options["correlation-id"]);
  if (options.token) metadata.set("authorization", `Bearer ${options.token}`);
  return metadata;
}

function deadline() {
  return new Date(Date.now() + Number(options["deadline-seconds"]) * 1000);
}

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function createJob(topic) {
  return new Promise((resolve, reject) => {
    const request = { spec: { brief: { topic } }, requestId: `node-${process.pid}-${Date.now()}` };
    client.CreateJob(request, callMetadata(), { deadline: deadline() }, (error, response) =>
      error ? reject(error) : resolve(response.job),
    );
  });
}

// Streams WatchJob events until the server closes the stream (after the terminal event).
function watchJob(jobId, afterSequence, phase) {
  return new Promise((resolve, reject) => {
    const events = [];
    const call = client.WatchJob({ jobId, afterSequence: String(afterSequence) }, callMetadata(), {
      deadline: deadline(),
    });
    call.on("data", (event) => {
      events.push(event);
      emit({
        phase,
        sequence: Number(event.sequence),
        kind: event.kind,
        stage: event.stage,
        jobStatus: event.jobStatus,
        jobPercent: event.jobPercent,
        correlationId: event.correlationId,
      });
    });
    call.on("error", reject);
    call.on("end", () => resolve(events));
  });
}

async function main() {
  const job = await createJob(options.topic);
  emit({ phase: "created", jobId: job.id, status: job.status });
  const events = await watchJob(job.id, 0, "watch");
  const last = events.at(-1);
  if (!last || !TERMINAL_KINDS.has(last.kind)) {
    throw new Error(`the watch ended without a terminal event (last: ${last?.kind})`);
  }
  const lastSequence = Number(last.sequence);
  const after = options.after === undefined ? Math.floor(lastSequence / 2) : Number(options.after);
  emit({ phase: "resumed-from", afterSequence: after });
  await watchJob(job.id, after, "resume");
  emit({ phase: "done" });
}

main()
  .then(() => client.close())
  .catch((error) => {
    console.error(`reelcast node client: ${error.code !== undefined ? `gRPC ${error.code}: ` : ""}${error.message}`);
    client.close();
    process.exit(1);
  });
