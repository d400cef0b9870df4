/**
 * Sandbox throughput and latency: executions/s and p50/p99 latency of a small snippet
 * per language, through the pool (size 2), in three modes: fresh calls; one session
 * per worker; and eight sessions taking turns, as the trajectories of a rollout do (a
 * Python worker then switches its interpreter state on nearly every call).
 * Then the cost of printing: one call printing 200,000 short lines per language (the
 * JavaScript console buffers inside the guest; Python's stdout is line-buffered).
 * Prints JSON lines.
 *
 *   npx tsx bench/sandbox.ts [calls-per-case]
 */
import { createSandboxPool } from "../packages/sandbox/src/pool.js"
import type { Language } from "../packages/sandbox/src/observation.js"

const calls = Number(process.argv[2] ?? 200)
const snippets: Record<Language, string> = { js: "var s = 0; for (var i = 0; i < 100; i++) s += i * 97; s", python: "s = sum(i * 97 for i in range(100))\ns" }
const pool = createSandboxPool({ size: 2 })
const quantile = (sorted: Array<number>, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

for (const language of ["js", "python"] as const) {
  await pool.warm(language)
  for (const mode of ["fresh", "session", "sessions-taking-turns"] as const) {
    const count = mode === "fresh" ? 0 : mode === "session" ? 2 : 8
    const sessions = Array.from({ length: count }, () => pool.openSession(language))
    const latencies: Array<number> = []
    const started = performance.now()
    // Two callers at a time, one per worker, as a rollout would keep the pool busy.
    await Promise.all([0, 1].map(async (lane) => {
      for (let i = lane; i < calls; i += 2) {
        const t = performance.now()
        const session = sessions.length === 0 ? {} : { session: sessions[i % sessions.length]! }
        const obs = await pool.run({ language, code: snippets[language], ...session })
        if (!obs.ok) throw new Error(`bench snippet failed: ${JSON.stringify(obs)}`)
        latencies.push(performance.now() - t)
      }
    }))
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    console.log(
      JSON.stringify({
        bench: "sandbox",
        language,
        mode,
        calls,
        execPerSec: +(calls / seconds).toFixed(1),
        p50Ms: +quantile(latencies, 0.5).toFixed(2),
        p99Ms: +quantile(latencies, 0.99).toFixed(2),
      }),
    )
    for (const s of sessions) pool.closeSession(s)
  }
}
const printLines = 200_000
const printers: Record<Language, string> = {
  js: `for (let i = 0; i < ${printLines}; i++) console.log("line", i)`,
  python: `for i in range(${printLines}): print("line", i)`,
}
for (const language of ["js", "python"] as const) {
  const obs = await pool.run({ language, code: printers[language], timeoutMs: 120_000 })
  if (!obs.ok) throw new Error(`bench printer failed: ${JSON.stringify(obs).slice(0, 300)}`)
  console.log(
    JSON.stringify({
      bench: "sandbox-print",
      language,
      lines: printLines,
      ms: +obs.durationMs.toFixed(0),
      usPerLine: +((obs.durationMs * 1000) / printLines).toFixed(2),
    }),
  )
}
await pool.close()
