/**
 * Embedding Turnwise in an app, two ways.
 *
 * 1. Effect: the training loop is an Effect whose requirements are services. The app
 *    provides them as Layers: here the runtime's policy, tokenizer and sandbox, plus
 *    the app's own metrics sink (records kept in memory, e.g. to chart live) and a
 *    checkpoint store that keeps nothing.
 * 2. Promise: `train(recipe, options)` for apps that do not use Effect.
 *
 *   npx tsx examples/embed.ts
 */
import { Effect, Layer } from "effect"
import { CheckpointStore, MetricsSink, trainLoop } from "@turnwise/dsl"
import type { MetricsRecord } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { train } from "@turnwise/cli"
import { byteTokenizer, createTransformer, makePolicyRuntime, TfjsPolicy, presets, setBackend, TfjsTokenizer } from "@turnwise/runtime"
import { WorkerSandbox } from "@turnwise/sandbox"
import { exactAnswerTask, generateProblems } from "@turnwise/tasks"

/** The Effect way: returns the metric records the app's own sink collected. */
export const withEffect = async (steps: number): Promise<Array<MetricsRecord>> => {
  await setBackend("wasm")
  const gtpo = recipes.gtpo!
  const runtime = makePolicyRuntime(createTransformer({ ...presets.tiny, seed: 3 }), byteTokenizer, gtpo.optimizer, { seed: 3, totalSteps: steps })
  const records: Array<MetricsRecord> = []
  const services = Layer.mergeAll(
    TfjsPolicy.layer(runtime),
    TfjsTokenizer.layer(byteTokenizer),
    WorkerSandbox.layer({ size: 1 }),
    MetricsSink.memory(records),
    Layer.succeed(CheckpointStore, { save: (step) => Effect.succeed({ step, path: "(not saved)", meta: {} }), restoreLatest: () => Effect.succeed(null) }),
  )
  const program = trainLoop(gtpo, exactAnswerTask("arithmetic"), {
    trainProblems: generateProblems({ seed: 1, count: 20, levels: [1], split: "train" }),
    evalProblems: generateProblems({ seed: 1, count: 4, levels: [1], split: "heldout" }),
    steps,
    promptsPerStep: 2,
    seed: 1,
    evalEvery: 0,
    checkpointEvery: 0,
    resume: false,
  })
  try {
    await Effect.runPromise(program.pipe(Effect.provide(services)))
  } finally {
    runtime.dispose()
  }
  return records
}

/** The Promise way. */
export const withPromise = (outDir: string, steps: number) =>
  train(recipes.gtpo!, { outDir, run: { train: { steps, promptsPerStep: 2, evalEvery: 0 }, task: { evalCount: 4, trainCount: 20 } } })

if (import.meta.url === `file://${process.argv[1]}`) {
  const records = await withEffect(2)
  console.log(`Effect: ${records.length} metric records, last step ${records.at(-1)?.step}`)
  const result = await withPromise("runs/example-embed", 2)
  console.log(`Promise: held-out accuracy ${result.after["outcome/accuracy"]}; report ${result.reportPath}`)
}
