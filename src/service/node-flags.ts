/**
 * The Node flags every idsync process runs with: bin/idsync.js's first line gives them to `node`
 * (`env -S`), and what starts node itself passes them too (the service daemon, a user unit of a
 * checkout, the sync bench). test/service/node-flags.test.ts holds the first line to this list.
 *
 * --max-semi-space-size=32: V8's young generation twice its default (16 MB a semi-space). A sync
 * cycle allocates ~18 KB an object on its event loop (pages from the reader thread, rows,
 * resources, requests), and much of a scavenge's young data is still live (a page being staged,
 * a chunk of the export waiting for the cloud): at 16 MB the 100k initial cycle ran 117
 * scavenges (0.78 s), at 32 MB 59 (0.52 s), and the whole process used ~1 s less CPU: 10.11 s →
 * 9.54 s a cycle on average, for ~50 MB more peak RSS (bench/README.md). A process's heap sizes
 * are fixed at its start: v8.setFlagsFromString cannot change them later.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
