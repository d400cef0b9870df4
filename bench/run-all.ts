/**
 * `npm run bench`: every benchmark in one run, so ratios compare figures measured on
 * the same machine in the same minutes.
 *
 * 1. The sgemm ceiling (numpy, the shared tools' sgemm-peak.py beside the checkout).
 * 2. Training throughput for the small and medium presets (bench/training.ts), with
 *    the achieved GFLOP/s as a fraction of the ceiling.
 * 3. Where a medium training step's time goes (bench/profile.ts): the step summary,
 *    the kernels taking at least 1% of the step, and the matrix products by shape
 *    class, each with its fraction of the ceiling (about 11 s with `--quick`; run
 *    bench/profile.ts itself for the per-shape lines).
 * 4. Kernel dispatches per medium training step and per decoded token per layer
 *    (bench/dispatches.ts).
 * 5. Sampling with and without the KV cache (bench/sampling.ts).
 * 6. Sandbox executions per second (bench/sandbox.ts).
 *
 * Prints JSON lines. Pass `--quick` for a shorter run (fewer steps and calls).
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as path from "node:path"

const quick = process.argv.includes("--quick")
const here = path.dirname(new URL(import.meta.url).pathname)
const sgemmScript = path.resolve(here, "../../shared/tools/sgemm-peak.py")

const run = (file: string, args: ReadonlyArray<string>): Array<Record<string, unknown>> => {
  const out = execFileSync(process.execPath, ["--import", "tsx", path.join(here, file), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })
  return out
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

let ceiling: number | null = null
if (existsSync(sgemmScript)) {
  try {
    const line = execFileSync("python3", [sgemmScript], { encoding: "utf8" }).trim().split("\n").at(-1) ?? "{}"
    const parsed = JSON.parse(line) as { sgemm_gflops?: number; error?: string }
    ceiling = parsed.sgemm_gflops ?? null
    console.log(JSON.stringify({ bench: "sgemm-ceiling", ...parsed }))
  } catch (error) {
    console.log(JSON.stringify({ bench: "sgemm-ceiling", error: error instanceof Error ? error.message : String(error) }))
  }
} else {
  console.log(JSON.stringify({ bench: "sgemm-ceiling", error: `${sgemmScript} not found` }))
}

for (const result of run("training.ts", ["--sizes", "small,medium", "--batch", "8", "--seq", "128", "--micro", "4", "--steps", quick ? "1" : "3"])) {
  const gflops = typeof result.gflopPerSecond === "number" ? result.gflopPerSecond : null
  console.log(
    JSON.stringify({ ...result, sgemmCeilingGflops: ceiling, fractionOfCeiling: gflops !== null && ceiling !== null ? +(gflops / ceiling).toFixed(4) : null }),
  )
}
const profileArgs = ["--size", "medium", "--batch", "8", "--seq", "128", "--micro", "4", "--steps", quick ? "1" : "2", "--plain", quick ? "0" : "1"]
for (const result of run("profile.ts", ceiling === null ? profileArgs : [...profileArgs, "--ceiling", String(ceiling)])) {
  const wanted = result.kind === "step" || result.kind === "matmul-class" ||
    (result.kind === "kernel" && typeof result.share === "number" && result.share >= 0.01)
  if (wanted) console.log(JSON.stringify(result))
}
for (const result of run("dispatches.ts", [])) console.log(JSON.stringify({ ...result, trainTop: undefined, decodeTop: undefined }))
for (const result of run("sampling.ts", quick ? ["--sizes", "small"] : [])) console.log(JSON.stringify(result))
for (const result of run("sandbox.ts", [quick ? "50" : "200"])) console.log(JSON.stringify(result))
