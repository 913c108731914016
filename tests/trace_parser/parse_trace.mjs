// Parse a Chrome trace-event JSON file with Chrome DevTools' own trace engine (the performance panel's parser,
// published on npm as @paulirish/trace_engine) and print, as JSON, what that consumer reads from it:
//   {bounds: {min, max}, generic, processes: [{pid, name, threads: [{tid, name, given, events: [...]}]}]}
// `given` counts the complete events the engine collected for the thread; `events` are those it placed in the
// thread's call tree (DevTools drops an event that overlaps a sibling without nesting, so a track whose events
// overlap shows fewer `events` than `given`). Used by tests/test_perfetto_parser.py.
import {analyzeTrace} from '@paulirish/trace_engine/analyze-trace.mjs';

const file = process.argv[2];
if (!file) {
  throw new Error('usage: node parse_trace.mjs TRACE.json');
}
const {parsedTrace} = await analyzeTrace(file);
const meta = parsedTrace.data.Meta;
const renderer = parsedTrace.data.Renderer;

const processes = [];
for (const [pid, proc] of renderer.processes) {
  const threads = [];
  const named = meta.threadsInProcess.get(pid) ?? new Map();
  const tids = new Set([...named.keys(), ...proc.threads.keys()]);
  for (const tid of [...tids].sort((a, b) => a - b)) {
    const thread = proc.threads.get(tid);
    const events = (thread?.entries ?? [])
        .filter(e => renderer.entryToNode.has(e))
        .map(e => ({name: e.name, cat: e.cat, ts: e.ts, dur: e.dur ?? 0,
                    depth: renderer.entryToNode.get(e).depth, args: e.args ?? {}}));
    threads.push({tid, name: named.get(tid)?.args?.name ?? null, given: thread?.entries?.length ?? 0, events});
  }
  processes.push({pid, name: meta.processNames.get(pid)?.args?.name ?? null, threads});
}
process.stdout.write(JSON.stringify({
  bounds: {min: meta.traceBounds.min, max: meta.traceBounds.max},
  generic: meta.traceIsGeneric,
  processes,
}));
