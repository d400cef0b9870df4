/**
 * Serving from code and from the command line.
 *
 * {@link serve} opens the policy (a preset, a checkpoint or a Hugging Face directory),
 * builds the {@link ServedPolicy} and {@link ServeServer} layers over the runtime's
 * Policy and Tokenizer layers, and resolves once the endpoint listens, with a handle
 * to train, read episodes and close. {@link runServe} is the `turnwise serve` command:
 * it serves until it is aborted (or, without a signal, until SIGINT / SIGTERM).
 *
 * @category constructors
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import type { RecipeType } from "@turnwise/dsl"
import { HfTokenizer, makePolicyRuntime, TfjsPolicy, setBackend, TfjsTokenizer } from "@turnwise/runtime"
import type { TokenizerShape } from "@turnwise/dsl"
import type { PolicyRuntime } from "@turnwise/runtime"
import type { Io } from "../io.js"
import { loadModel, loadTokenizer } from "../run/context.js"
import { loadRecipe } from "../run/resolve.js"
import { defaultRunConfig } from "../run/RunConfig.js"
import { byteChatFormat, templateChatFormat } from "./chat-format.js"
import type { ChatFormat } from "./chat-format.js"
import type { EpisodeReward } from "./episodes.js"
import { decodeServeOptions } from "./ServeOptions.js"
import type { ServeOptions, ServeOverrides } from "./ServeOptions.js"
import { ServedPolicy } from "./ServedPolicy.js"
import type { EpisodeView, ServedTrainResult } from "./ServedPolicy.js"
import { ServeServer } from "./ServeServer.js"

/** Options of {@link serve}: settings, plus what only code can give. */
export type ServeCallOptions = Omit<ServeOverrides, "recipe"> & {
  /** A recipe value, or a name/path as in the settings. */
  readonly recipe?: string | RecipeType
  /** In-process rewards, asked at training time for each episode without one. */
  readonly rewardHook?: (episode: EpisodeView) => EpisodeReward | null | Promise<EpisodeReward | null>
}

/** A running endpoint. */
export interface ServeHandle {
  /** Base URL for an OpenAI client (ends in /v1). */
  readonly url: string
  readonly port: number
  readonly policyVersion: () => number
  /** One training step on the rewarded episodes (as POST /v1/train). */
  readonly train: () => Promise<ServedTrainResult>
  /** Attach a reward (as POST /v1/episodes/{id}/reward). */
  readonly reward: (episodeId: string, reward: EpisodeReward) => Promise<void>
  /** A recorded episode (as GET /v1/episodes/{id}). */
  readonly episode: (episodeId: string) => Promise<EpisodeView>
  /** The live model, optimiser and tokenizer. */
  readonly runtime: PolicyRuntime
  /** Stop listening and free the model. */
  readonly close: () => Promise<void>
}

/**
 * The chat format of a tokenizer: its chat template when it has one, else the
 * built-in format.
 */
export const chatFormatFor = (tokenizer: TokenizerShape): ChatFormat => {
  if (tokenizer instanceof HfTokenizer && tokenizer.chatTemplate !== null) {
    const template = tokenizer.chatTemplate
    return templateChatFormat(
      { applyChatTemplate: (messages, options) => tokenizer.applyChatTemplate(messages, options), bosToken: tokenizer.bosToken },
      template.specials.eos_token ?? "",
    )
  }
  return byteChatFormat
}

/**
 * Serve a policy over an OpenAI-compatible API.
 *
 * @example
 * const server = await serve({ port: 0, model: { preset: "tiny" }, recipe: "grpo" })
 * const client = new OpenAI({ baseURL: server.url, apiKey: "unused" })
 * await server.close()
 */
export const serve = async (options: ServeCallOptions = {}): Promise<ServeHandle> => {
  const { recipe: recipeOption, rewardHook, ...rest } = options
  const settings = decodeServeOptions(typeof recipeOption === "string" ? { ...rest, recipe: recipeOption } : rest)
  const recipe = typeof recipeOption === "object" ? recipeOption : await loadRecipe(settings.recipe)
  await setBackend(settings.backend)
  const run = { ...defaultRunConfig, model: settings.model, backend: settings.backend }
  const model = await loadModel(run)
  let runtime: PolicyRuntime
  try {
    const tokenizer = await loadTokenizer(run, model)
    runtime = makePolicyRuntime(model, tokenizer, recipe.optimizer, { seed: settings.seed, totalSteps: settings.plannedSteps })
  } catch (error) {
    model.dispose()
    throw error
  }
  const served = ServedPolicy.layer({
    modelName: settings.modelName,
    format: chatFormatFor(runtime.tokenizer),
    recipe,
    maxNewTokens: settings.maxNewTokens,
    seed: settings.seed,
    trainEvery: settings.trainEvery,
    ...(rewardHook === undefined ? {} : { rewardHook }),
  }).pipe(Layer.provide(Layer.mergeAll(TfjsPolicy.layer(runtime), TfjsTokenizer.layer(runtime.tokenizer))))
  const layer = ServeServer.layer({ host: settings.host, port: settings.port, apiKey: settings.apiKey, maxBodyBytes: settings.maxBodyBytes }).pipe(
    Layer.provideMerge(served),
  )
  const managed = ManagedRuntime.make(layer)
  const opened = await managed
    .runPromise(Effect.gen(function*() {
      return { server: yield* ServeServer, policy: yield* ServedPolicy }
    }))
    .catch(async (error: unknown) => {
      await managed.dispose()
      runtime.dispose()
      throw error
    })
  const { server, policy } = opened
  let closed = false
  return {
    url: server.url,
    port: server.port,
    policyVersion: policy.policyVersion,
    train: () => managed.runPromise(policy.train()),
    reward: (id, reward) => managed.runPromise(policy.reward(id, reward)).then(() => undefined),
    episode: (id) => managed.runPromise(policy.episode(id)),
    runtime,
    close: async () => {
      if (closed) return
      closed = true
      await managed.dispose()
      runtime.dispose()
    },
  }
}

/**
 * The `turnwise serve` command: serve until `signal` aborts (without one, until
 * SIGINT or SIGTERM); resolves with the exit code.
 *
 * @example
 * const code = await runServe(decodeServeOptions({ port: 8000 }), io)
 */
export const runServe = async (options: ServeOptions, io: Io, signal?: AbortSignal): Promise<number> => {
  const server = await serve(options)
  io.log(`serving ${options.modelName} at ${server.url} (recipe ${options.recipe}; ${options.apiKey === "" ? "no API key" : "API key required"})`)
  io.log(`episodes: send the header x-turnwise-episode; rewards: POST ${server.url}/episodes/{id}/reward; train: POST ${server.url}/train`)
  await new Promise<void>((resolve) => {
    if (signal !== undefined) {
      if (signal.aborted) resolve()
      else signal.addEventListener("abort", () => resolve(), { once: true })
      return
    }
    const stop = () => {
      process.off("SIGINT", stop)
      process.off("SIGTERM", stop)
      resolve()
    }
    process.on("SIGINT", stop)
    process.on("SIGTERM", stop)
  })
  await server.close()
  io.log("server closed")
  return 0
}
