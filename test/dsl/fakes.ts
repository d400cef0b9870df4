/**
 * Scripted stand-ins for the pipeline's services, so DSL tests check the rollout and
 * the pipeline's wiring exactly, without a model or an interpreter.
 */
import { Effect, Layer } from "effect"
import type { TrainingSequence } from "@turnwise/core"
import { CheckpointStore, MetricsSink, Policy, Sandbox, Tokenizer } from "@turnwise/dsl"
import type { Generation, Observation, Task, TrainOptions } from "@turnwise/dsl"

/** A problem of the toy task the pipeline tests run. */
export interface ToyProblem {
  readonly id: string
  readonly question: string
  readonly answer: string
}

/** An exact-answer task over {@link ToyProblem}s. */
export const toyTask: Task<ToyProblem> = {
  name: "toy",
  prompt: (p) => `Q: ${p.question}\n`,
  grade: (p, answer) => Effect.succeed(answer === p.answer ? { correct: true, score: 1 } : { correct: false, score: 0 }),
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const fakeTokenizer = {
  vocabSize: 259,
  bos: 256,
  eos: 257,
  pad: 258,
  encode: (text: string) => [...encoder.encode(text)],
  decode: (ids: ReadonlyArray<number>) => decoder.decode(new Uint8Array(ids.filter((id) => id < 256))),
}

/** `script(row, turn)` gives the text the policy "writes"; `null` means end of sequence. */
export type Script = (row: number, turn: number) => string | null

export interface FakeWorld {
  /** Every token each row's session held, in order (context appended plus generated). */
  readonly sessionTokens: Array<Array<number>>
  readonly trained: Array<{ readonly sequences: ReadonlyArray<TrainingSequence>; readonly options: TrainOptions }>
  readonly sandboxCalls: Array<string>
  /** The code strings of each embedCode call. */
  readonly embedded: Array<ReadonlyArray<string>>
  maxConcurrentCalls: number
}

export const makeWorld = (): FakeWorld => ({ sessionTokens: [], trained: [], sandboxCalls: [], embedded: [], maxConcurrentCalls: 0 })

export const fakePolicy = (script: Script, world: FakeWorld): Layer.Layer<Policy> =>
  Layer.succeed(Policy, {
    maxSeqLen: 4096,
    session: (rows) =>
      Effect.sync(() => {
        const turnOfRow = Array.from({ length: rows }, () => 0)
        world.sessionTokens.length = 0
        for (let r = 0; r < rows; r++) world.sessionTokens.push([])
        return {
          append: (row, tokens) => Effect.sync(() => void world.sessionTokens[row]!.push(...tokens)),
          length: (row) => world.sessionTokens[row]!.length,
          generate: (rowsToRun, options) =>
            Effect.sync(() =>
              rowsToRun.map((row): Generation => {
                const text = script(row, turnOfRow[row]!++)
                if (text === null) {
                  world.sessionTokens[row]!.push(fakeTokenizer.eos)
                  return { tokens: [fakeTokenizer.eos], logprobs: [-0.5], text: "", finish: "eos" }
                }
                let tokens = fakeTokenizer.encode(text)
                let finish: Generation["finish"] = options.stop.some((stop) => text.endsWith(stop)) ? "stop" : "length"
                if (tokens.length > options.maxNewTokens) {
                  tokens = tokens.slice(0, options.maxNewTokens)
                  finish = "length"
                }
                world.sessionTokens[row]!.push(...tokens)
                return { tokens, logprobs: tokens.map(() => -0.25), text: fakeTokenizer.decode(tokens), finish }
              })
            ),
        }
      }),
    train: (sequences, options) =>
      Effect.sync(() => {
        world.trained.push({ sequences, options })
        return { skipped: false, metrics: { "actor/pg_loss": 0.5 } }
      }),
    trainSupervised: () => Effect.succeed({ skipped: false, metrics: {} }),
    embedCode: (codes) =>
      Effect.sync(() => {
        world.embedded.push(codes)
        return codes.map((code) => [code.length, 1])
      }),
  })

/** Evaluates `a op b ...` arithmetic; anything else is an error observation. */
export const fakeSandbox = (world: FakeWorld, delayMs = 5): Layer.Layer<Sandbox> => {
  let inFlight = 0
  return Layer.succeed(Sandbox, {
    run: (request) =>
      Effect.gen(function*() {
        world.sandboxCalls.push(request.code)
        inFlight++
        world.maxConcurrentCalls = Math.max(world.maxConcurrentCalls, inFlight)
        yield* Effect.sleep(delayMs)
        inFlight--
        if (!/^[\d\s+\-*/().]+$/.test(request.code)) {
          return { ok: false, kind: "error", error: "SyntaxError: bad code", stdout: "", durationMs: 1 } satisfies Observation
        }
        const value = String(Function(`"use strict"; return (${request.code})`)())
        return { ok: true, stdout: "", value, durationMs: 1 } satisfies Observation
      }),
    openSession: () => Effect.succeed("session"),
    closeSession: () => Effect.void,
  })
}

export const fakeServices = (script: Script, world: FakeWorld) =>
  Layer.mergeAll(
    fakePolicy(script, world),
    fakeSandbox(world),
    Layer.succeed(Tokenizer, fakeTokenizer),
    MetricsSink.none,
    Layer.succeed(CheckpointStore, { save: (step) => Effect.succeed({ step, path: "mem", meta: {} }), restoreLatest: () => Effect.succeed(null) }),
  )
