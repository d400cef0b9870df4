/**
 * Train an agent you already have: the agent below is written only against the
 * official `openai` client (a chat loop with its own `look` tool), and Turnwise trains
 * the model behind it until the agent learns to use its tool.
 *
 * The toy task: the agent is asked which digit a dial shows. The digit is drawn per
 * episode on the agent's side, so the prompt cannot tell it; only `look` can. An
 * answer is right (reward 1) when it is the digit, else wrong (reward 0).
 *
 * The trainer side serves a shipped warm start (assets/warm-start-m50: the compact
 * preset, which already copies a tool's output into its answer in the built-in task's
 * protocol) and gives it a short supervised warm-up on the chat format with
 * demonstrations of two ways to answer, half each: call `look` and answer with its
 * output, or answer at once. Answering at once is a guess (one in ten), and after 40
 * steps the policy looks in only a fifth to two fifths of its runs, so it succeeds
 * about as often; reinforcement learning has to find out that looking pays.
 *
 * Then come rounds: the agent answers each round's episodes (named by a header), each
 * episode gets its reward, and one GRPO step trains on the round's episodes. The
 * success rate is measured before and after the rounds through the same endpoint, with
 * the same fixed sampling seeds both times, at the policy's own temperature (1).
 *
 *   npx tsx examples/openai-agent.ts [rounds] [seed]
 *
 * test/e2e/serve-learning.test.ts runs it and checks that the success rate rises;
 * docs/SERVE.md has the measured numbers.
 */
import { fileURLToPath } from "node:url"
import OpenAI from "openai"
import { Rng } from "@turnwise/core"
import type { TrainingSequence } from "@turnwise/core"
import { Recipe } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { byteTokenizer, constantSchedule, createSupervisedTrainer } from "@turnwise/runtime"
import { byteChatFormat, serve } from "@turnwise/cli"
import type { ChatTool, ServeHandle } from "@turnwise/cli"

// ---------------------------------------------------------------------------------
// The agent: nothing but the openai client.

const lookTool: OpenAI.ChatCompletionTool = {
  type: "function",
  function: { name: "look", description: "Read the dial", parameters: { type: "object", properties: {} } },
}

/** The question the agent is asked. */
export const question = "Which digit does the dial show?"

/** What the agent did: its final answer (null when none came) and whether it looked. */
export interface AgentRun {
  readonly answer: string | null
  readonly looked: boolean
}

/** How the agent's requests are sampled: in a training episode, or with a fixed temperature and seed (evaluation). */
export type Sampling = { readonly episode: string } | { readonly temperature: number; readonly seed: number }

/** What `look` returns: the dial's display, the digit across its ten cells. */
export const display = (signal: string): string => signal.repeat(10)

/** Ask which digit the dial shows; the `look` tool reports `signal`. Returns the final answer. */
export const runAgent = async (client: OpenAI, signal: string, sampling: Sampling, maxTurns = 3): Promise<AgentRun> => {
  const messages: Array<OpenAI.ChatCompletionMessageParam> = [{ role: "user", content: question }]
  let looked = false
  for (let turn = 0; turn < maxTurns; turn++) {
    const reply = "episode" in sampling
      ? await client.chat.completions.create({ model: "turnwise", messages, tools: [lookTool] }, { headers: { "x-turnwise-episode": sampling.episode } })
      : await client.chat.completions.create({ model: "turnwise", messages, tools: [lookTool], temperature: sampling.temperature, seed: sampling.seed + turn })
    const message = reply.choices[0]!.message
    const calls = message.tool_calls ?? []
    if (calls.length === 0) return { answer: message.content, looked }
    messages.push(message as OpenAI.ChatCompletionMessageParam)
    for (const call of calls) {
      looked = true
      messages.push({ role: "tool", tool_call_id: call.id, content: display(signal) })
    }
  }
  return { answer: null, looked }
}

// ---------------------------------------------------------------------------------
// The trainer side: Turnwise.

/** What the dial shows in `count` episodes: digits drawn uniformly. */
export const signals = (count: number, seed: number): Array<string> => {
  const rng = Rng.fromSeed(seed)
  return Array.from({ length: count }, () => String(rng.int(10)))
}

const chatTools: Array<ChatTool> = [{ name: "look", description: lookTool.function.description ?? "", parameters: lookTool.function.parameters }]

/**
 * A demonstration as the served policy sees it: the prompt the endpoint renders for
 * the agent's first request (context), then what the policy writes (trained on) and the
 * tool's output (context). With the tool: a call of `look`, then its output as the
 * answer; without: the digit at once (which the prompt cannot tell, so a guess).
 */
export const demonstration = (signal: string, withTool: boolean): TrainingSequence => {
  const prompt = [
    byteTokenizer.bos,
    ...byteTokenizer.encode(byteChatFormat.prompt([{ role: "user", content: question, toolCalls: [], toolCallId: null }], chatTools)),
  ]
  const pieces: Array<readonly [string, 0 | 1]> = withTool
    ? [[`<call name="look">{}</call>`, 1], [`<|end|>\n<|tool|><output>${display(signal)}</output><|end|>\n<|assistant|>`, 0], [`${signal}<|end|>`, 1]]
    : [[`${signal}<|end|>`, 1]]
  const tokens = [...prompt]
  const mask: Array<number> = prompt.map(() => 0)
  for (const [text, learn] of pieces) {
    const ids = byteTokenizer.encode(text)
    tokens.push(...ids)
    mask.push(...ids.map(() => learn))
  }
  const zeros = tokens.map(() => 0)
  return { tokens, mask, oldLogprobs: zeros, advantages: zeros, turnIndex: tokens.map(() => -1) }
}

/**
 * The supervised warm-up: `steps` steps on batches of `batchSize` demonstrations drawn
 * from `demos` signals (every other one looks first). Returns the last step's token accuracy.
 */
export const warmUp = async (server: ServeHandle, demos: ReadonlyArray<string>, options: {
  readonly steps: number
  readonly batchSize: number
  readonly lr: number
  readonly seed: number
}): Promise<number> => {
  const sequences = demos.map((signal, k) => demonstration(signal, k % 2 === 0))
  const rng = Rng.fromSeed(options.seed)
  const sft = createSupervisedTrainer(server.runtime.model, {
    schedule: constantSchedule(options.lr),
    microBatchSize: options.batchSize,
    rng: rng.fork(),
    padId: byteTokenizer.pad,
  })
  let accuracy = 0
  try {
    for (let step = 0; step < options.steps; step++) {
      const batch = Array.from({ length: Math.min(options.batchSize, sequences.length) }, () => sequences[rng.int(sequences.length)]!)
      accuracy = (await sft.step(batch)).accuracy
    }
  } finally {
    sft.dispose()
  }
  return accuracy
}

/** How the agent does over a set of runs. */
export interface Evaluation {
  /** Fraction of runs answered with the digit the dial showed. */
  readonly successRate: number
  /** Fraction of runs that called `look`. */
  readonly toolRate: number
  readonly runs: number
}

/** Run the agent once per signal at temperature 1 with fixed seeds (the same seeds every time it is called). */
export const evaluate = async (client: OpenAI, runSignals: ReadonlyArray<string>, seed: number): Promise<Evaluation> => {
  let correct = 0
  let looked = 0
  for (const [k, signal] of runSignals.entries()) {
    const run = await runAgent(client, signal, { temperature: 1, seed: seed + 10 * k })
    correct += run.answer?.trim() === signal ? 1 : 0
    looked += run.looked ? 1 : 0
  }
  return { successRate: correct / runSignals.length, toolRate: looked / runSignals.length, runs: runSignals.length }
}

/** What {@link learn} reports per round. */
export interface Round {
  readonly round: number
  readonly policyVersion: number
  /** Fraction of the round's episodes answered correctly (before the round's step). */
  readonly successRate: number
}

/** The settings of {@link learn}; see {@link learningDefaults}. */
export interface LearnOptions {
  /** Seeds the warm-up, sampling and the dial's digits. */
  readonly seed: number
  readonly rounds: number
  /** Each round draws `tasksPerRound` digits and runs the agent `groupSize` times on each (the episodes share one prompt, so one GRPO group). */
  readonly tasksPerRound: number
  readonly groupSize: number
  /** Learning rate of the GRPO steps. */
  readonly lr: number
  /** Demonstrations in the warm-up's pool (half of them look), warm-up steps, and demonstrations per step. */
  readonly demonstrations: number
  readonly sftSteps: number
  readonly sftBatch: number
  /** Runs of the agent (each on its own signal and seed) for the before and after success rates (0: no evaluation). */
  readonly evalRuns: number
  readonly log?: (line: string) => void
}

/** What {@link learn} measured. */
export interface LearningReport {
  /** After the warm-up, before any reinforcement learning (null without evaluation). */
  readonly before: Evaluation | null
  /** After the rounds. */
  readonly after: Evaluation | null
  readonly rounds: ReadonlyArray<Round>
  /** Token accuracy of the warm-up's last step. */
  readonly sftAccuracy: number
}

/** A shipped warm start (assets/warm-start-m50: the compact preset taught the `<code>`/`<output>`/`<answer>` protocol of the built-in arithmetic task). */
export const warmStart = fileURLToPath(new URL("../assets/warm-start-m50", import.meta.url))

/** The settings the measured numbers in docs/SERVE.md were taken with. */
export const learningDefaults: LearnOptions = {
  seed: 1,
  rounds: 8,
  tasksPerRound: 4,
  groupSize: 8,
  lr: 3e-4,
  demonstrations: 256,
  sftSteps: 40,
  sftBatch: 8,
  evalRuns: 64,
}

/** Serve, warm up, evaluate, train for `rounds` rounds, evaluate again. */
export const learn = async (overrides: Partial<LearnOptions> = {}): Promise<LearningReport> => {
  const options = { ...learningDefaults, ...overrides }
  const log = options.log ?? (() => {})
  const seconds = (since: number) => Math.round((performance.now() - since) / 1000)
  const recipe = Recipe.derive(recipes.grpo!, {
    name: "grpo-openai-agent",
    rollout: { temperature: 1 },
    // No KL penalty, so no reference copy of the weights (which would be the untrained ones).
    optimizer: { lr: options.lr, reference: "none", microBatchSize: 8 },
  })
  const server = await serve({ port: 0, model: { init: warmStart }, recipe, maxNewTokens: 40, seed: options.seed })
  const t0 = performance.now()
  try {
    // The warm-up's, the rounds' and the evaluation's signals come from different seeds.
    const sftAccuracy = await warmUp(server, signals(options.demonstrations, 10_000 + options.seed), {
      steps: options.sftSteps,
      batchSize: options.sftBatch,
      lr: 3e-3,
      seed: options.seed,
    })
    log(JSON.stringify({ phase: "warm-up", sftTokenAccuracy: sftAccuracy, seconds: seconds(t0) }))
    const client = new OpenAI({ baseURL: server.url, apiKey: "unused", maxRetries: 0 })
    const heldOut = signals(options.evalRuns, 20_000 + options.seed)
    const measure = async (phase: string) => {
      if (heldOut.length === 0) return null
      const evaluation = await evaluate(client, heldOut, 30_000 + options.seed)
      log(JSON.stringify({ phase, ...evaluation, seconds: seconds(t0) }))
      return evaluation
    }
    const before = await measure("before")
    const rounds: Array<Round> = []
    for (let round = 0; round < options.rounds; round++) {
      let correct = 0
      let total = 0
      for (const [k, signal] of signals(options.tasksPerRound, 40_000 + 1000 * options.seed + round).entries()) {
        for (let g = 0; g < options.groupSize; g++) {
          const episode = `r${round}-t${k}-g${g}`
          const run = await runAgent(client, signal, { episode })
          const solved = run.answer?.trim() === signal
          correct += solved ? 1 : 0
          total += 1
          await client.post(`/episodes/${episode}/reward`, { body: { reward: solved ? 1 : 0 } })
        }
      }
      const trained = await client.post<{ policy_version: number; skipped: boolean; metrics: Readonly<Record<string, number>> }>("/train")
      const result = { round, policyVersion: trained.policy_version, successRate: correct / total }
      rounds.push(result)
      log(JSON.stringify({ ...result, toolRate: trained.metrics["tool/use_rate"], seconds: seconds(t0) }))
    }
    const after = await measure("after")
    return { before, after, rounds, sftAccuracy }
  } finally {
    await server.close()
  }
}

/** The rounds alone, with the given settings and no evaluation. */
export const main = async (options: Partial<LearnOptions>): Promise<ReadonlyArray<Round>> => (await learn({ evalRuns: 0, ...options })).rounds

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(process.argv[2] ?? learningDefaults.rounds)
  const seed = Number(process.argv[3] ?? learningDefaults.seed)
  const report = await learn({ rounds, seed, log: console.log })
  console.log(JSON.stringify({ before: report.before?.successRate, after: report.after?.successRate }))
}
