/**
 * Sandbox throughput and latency: executions/s and p50/p99 latency of a small snippet
 * per language, fresh and session mode, through the pool (size 2). Prints JSON lines.
 *
 *   npx tsx bench/sandbox.ts [calls-per-case]
 */
import { createSandboxPool } from "../packages/runtime/src/sandbox/pool.js"
import type { Language } from "../packages/runtime/src/sandbox/observation.js"

const calls = Number(process.argv[2] ?? 200)
const snippets: Record<Language, string> = { js: "var s = 0; for (var i = 0; i < 100; i++) s += i * 97; s", python: "s = sum(i * 97 for i in range(100))\ns" }
const pool = createSandboxPool({ size: 2 })
const quantile = (sorted: Array<number>, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

for (const language of ["js", "python"] as const) {
  await pool.warm(language)
  for (const mode of ["fresh", "session"] as const) {
    const sessions = mode === "session" ? [pool.openSession(language), pool.openSession(language)] : []
    const latencies: Array<number> = []
    const started = performance.now()
    // Two callers at a time, one per worker, as a rollout would keep the pool busy.
    await Promise.all([0, 1].map(async (lane) => {
      for (let i = lane; i < calls; i += 2) {
        const t = performance.now()
        const obs = await pool.run({ language, code: snippets[language], ...(mode === "session" ? { session: sessions[lane]! } : {}) })
        if (!obs.ok) throw new Error(`bench snippet failed: ${JSON.stringify(obs)}`)
        latencies.push(performance.now() - t)
      }
    }))
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    console.log(JSON.stringify({ bench: "sandbox", language, mode, calls, execPerSec: +(calls / seconds).toFixed(1), p50Ms: +quantile(latencies, 0.5).toFixed(2), p99Ms: +quantile(latencies, 0.99).toFixed(2) }))
    for (const s of sessions) pool.closeSession(s)
  }
}
await pool.close()
