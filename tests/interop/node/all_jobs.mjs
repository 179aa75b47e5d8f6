// An outsider's view of the stream of all jobs, in Node.js, built only from proto/ and the platform's
// EventSource (Node's WHATWG implementation, `--experimental-eventsource`): WatchJobs over gRPC and
// /api/events over SSE each follow a job created after they opened, then resume from a middle cursor.
//
//   node --experimental-eventsource all_jobs.mjs --target 127.0.0.1:50051 --bridge http://127.0.0.1:8080
//
// Lines: {"phase":"grpc"|"grpc-resumed"|"sse"|"sse-resumed","jobId":...,"sequence":N,"kind"|"event":...,
// "cursor":...}, {"phase":"created","jobId":...} and finally {"phase":"done"}.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../proto");
const { values: options } = parseArgs({
  options: { target: { type: "string" }, bridge: { type: "string" } },
});
const definition = protoLoader.loadSync("reelcast/jobs/v1/job_service.proto", {
  includeDirs: [PROTO_ROOT],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { JobService } = grpc.loadPackageDefinition(definition).reelcast.jobs.v1;
const client = new JobService(options.target, grpc.credentials.createInsecure());
const TERMINAL_KINDS = new Set(["EVENT_KIND_JOB_COMPLETED", "EVENT_KIND_JOB_FAILED"]);
const SSE_EVENTS = ["job-status", "step-status", "step-progress", "job-completed", "job-failed"];

const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

function createJob(topic) {
  return new Promise((resolve, reject) => {
    client.CreateJob({ spec: { brief: { topic } } }, (error, response) => (error ? reject(error) : resolve(response.job)));
  });
}

// WatchJobs from `cursor` until `count` events arrived (or, with `opened`, until the job `opened` creates
// ends); every event is printed with its cursor.
function watchJobs(phase, cursor, { count = Infinity, opened = null } = {}) {
  return new Promise((resolve, reject) => {
    const events = [];
    let jobId = null;
    const call = client.WatchJobs({ cursor });
    call.on("data", async (response) => {
      if (!response.event) {
        if (opened) jobId = await opened();
        return;
      }
      const { event } = response;
      events.push(response);
      emit({ phase, jobId: event.jobId, sequence: Number(event.sequence), kind: event.kind, cursor: response.cursor });
      const ended = jobId !== null && event.jobId === jobId && TERMINAL_KINDS.has(event.kind);
      if (events.length >= count || ended) {
        call.cancel();
        resolve(events);
      }
    });
    call.on("error", (error) => {
      if (error.code !== grpc.status.CANCELLED) reject(error);
    });
  });
}

// /api/events (no job list) from `lastEventId` until `count` events, or until the job `opened` creates ends.
function followSse(phase, lastEventId, { count = Infinity, opened = null } = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL("/api/events", options.bridge);
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    const source = new EventSource(url);
    const events = [];
    let jobId = null;
    source.onopen = async () => {
      if (opened && jobId === null) jobId = await opened();
    };
    source.onerror = () => {
      source.close();
      reject(new Error(`${phase}: the EventSource failed`));
    };
    for (const type of SSE_EVENTS) {
      source.addEventListener(type, (message) => {
        const data = JSON.parse(message.data);
        events.push(message.lastEventId);
        emit({ phase, jobId: data.jobId, event: type, status: data.status, cursor: message.lastEventId });
        const ended = jobId !== null && data.jobId === jobId && (type === "job-completed" || type === "job-failed");
        if (events.length >= count || ended) {
          source.close();
          resolve(events);
        }
      });
    }
  });
}

async function created(topic) {
  const job = await createJob(topic);
  emit({ phase: "created", jobId: job.id });
  return job.id;
}

async function main() {
  const viaGrpc = await watchJobs("grpc", "", { opened: () => created("Seen through gRPC") });
  const middle = Math.floor(viaGrpc.length / 2);
  await watchJobs("grpc-resumed", viaGrpc[middle - 1].cursor, { count: viaGrpc.length - middle });
  const viaSse = await followSse("sse", "", { opened: () => created("Seen through SSE") });
  const half = Math.floor(viaSse.length / 2);
  await followSse("sse-resumed", viaSse[half - 1], { count: viaSse.length - half });
  emit({ phase: "done" });
}

main()
  .then(() => client.close())
  .catch((error) => {
    console.error(`reelcast node all-jobs client: ${error.message}`);
    client.close();
    process.exit(1);
  });
