// Run Python in the 32-bit MicroPython VM (the webassembly port) for tools/vboard/heapmap.py.
//
//   node run.mjs JOB.json
//
// JOB: {"copy": [[host_dir, vm_dir], ...], "romfs": host_image_or_null, "calls": [code, ...], "pause_ms": N}
// Host directories are copied into the VM's in-memory filesystem; a ROMFS image is mounted at
// /rom as a ROMFS-enabled firmware mounts its partition (outside the GC heap, executed in place).
// Each call is one top-level runPython, and the VM idles pause_ms between calls so asyncio tasks
// run. Measure in a call of its own: while a call runs, the conservative collector also sees stale
// words on the wasm C stack and keeps garbage they point to (300 freed bytearrays: 40 KB kept);
// between calls that stack is empty, and gc.collect() frees it all.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const vm = path.join(here, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const { loadMicroPython } = await import(vm);
const romfs = job.romfs ? new Uint8Array(fs.readFileSync(job.romfs)) : undefined;
const mp = await loadMicroPython({
  romfs,
  heapsize: job.heap || 4 << 20,
  linebuffer: true,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copyIn(src, dst) {
  if (fs.statSync(src).isDirectory()) {
    mp.FS.mkdirTree(dst);
    for (const name of fs.readdirSync(src)) copyIn(path.join(src, name), dst + "/" + name);
  } else {
    mp.FS.writeFile(dst, fs.readFileSync(src));
  }
}

for (const [hostDir, vmDir] of job.copy || []) copyIn(hostDir, vmDir);
for (const code of job.calls) {
  try {
    mp.runPython(code);
  } catch (error) {
    if (error.name !== "PythonError") throw error;
    process.stderr.write(error.message + "\n");
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, job.pause_ms || 0));
}
process.exit(0);
