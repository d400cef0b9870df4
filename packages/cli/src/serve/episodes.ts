/**
 * Episodes: the multi-turn trajectories recorded from served requests.
 *
 * An episode (named by the client) is a list of branches; a branch is a prompt and
 * the turns sampled after it, each turn holding the exact token ids and log-probs
 * the policy sampled and, once the next request arrives, the observation tokens that
 * followed it (tool results, the next user message, the template's glue: context,
 * masked from the loss). A request extends the current branch when its messages are
 * the branch's last request, then our reply exactly as we sent it, then messages that
 * are not the assistant's; the branch's tokens are then reused as they are and only
 * the observation is encoded. Any other request starts a new branch whose prompt is
 * the whole conversation rendered afresh, and the reason is reported. Training uses
 * an episode's last branch.
 *
 * @category models
 */
import type { FinishReason, MalformedReason, Outcome, Trajectory, Turn } from "@turnwise/core"
import type { ChatFormat } from "./chat-format.js"
import { invalidRequest, ServeRequestError } from "./errors.js"
import { sameMessage } from "./request.js"
import type { ChatMessage, ChatRequest, ChatTool } from "./request.js"

/** One sampled assistant turn, as recorded. */
export interface RecordedTurn {
  readonly policyTokens: ReadonlyArray<number>
  readonly logprobs: ReadonlyArray<number>
  readonly text: string
  /** Why sampling stopped: "stop" (a turn end or client stop string), "eos", "length" or "context". */
  readonly finish: "stop" | "eos" | "length" | "context"
  readonly malformed: MalformedReason | null
  /** The messages this turn answered. */
  readonly messages: ReadonlyArray<ChatMessage>
  /** The reply sent to the client. */
  readonly reply: ChatMessage
  /** Policy version that sampled the turn. */
  readonly policyVersion: number
  /** Observation after the turn (set when a later request extends it). */
  feedbackTokens: ReadonlyArray<number>
  feedbackText: string
}

/** A prompt and the turns sampled after it. */
export interface Branch {
  readonly promptTokens: ReadonlyArray<number>
  readonly tools: ReadonlyArray<ChatTool>
  readonly turns: Array<RecordedTurn>
  /** Why the previous branch was not extended (null for the first branch). */
  readonly mismatch: string | null
}

/** A reward: one number for the episode, or one per turn of its last branch. */
export type EpisodeReward = number | ReadonlyArray<number>

/** A recorded episode. */
export interface Episode {
  readonly id: string
  /** Episodes of one group answered the same prompt (the client's group name, or the first prompt's tokens). */
  group: string
  readonly branches: Array<Branch>
  reward: EpisodeReward | null
  /** Set once a training step used the episode. */
  trained: boolean
}

/** Where a request's generation starts, before anything is recorded. */
export interface TurnPlan {
  readonly episode: Episode | null
  /** Index of the branch the turn goes to (a new one when it equals the branch count). */
  readonly branch: number
  /** Every token before the turn: the branch's tokens and the observation, or a fresh prompt. */
  readonly context: ReadonlyArray<number>
  /** Observation tokens to attach to the branch's last turn when the turn is recorded. */
  readonly observation: { readonly tokens: ReadonlyArray<number>; readonly text: string } | null
  /** A new prompt's tokens, when the turn starts a branch. */
  readonly promptTokens: ReadonlyArray<number> | null
  /** Why the request starts a new branch of an episode that had turns. */
  readonly mismatch: string | null
}

/** What the store needs to turn text into tokens. */
export interface TextCodec {
  readonly bos: number
  readonly encode: (text: string) => ReadonlyArray<number>
}

const sameTools = (a: ReadonlyArray<ChatTool>, b: ReadonlyArray<ChatTool>): boolean => JSON.stringify(a) === JSON.stringify(b)

/** The tokens of a branch in order: prompt, then each turn's policy and observation tokens. */
export const branchTokens = (
  branch: Branch,
): Array<number> => [...branch.promptTokens, ...branch.turns.flatMap((t) => [...t.policyTokens, ...t.feedbackTokens])]

/** Why `messages` do not extend the branch's last turn, or null when they do. */
const mismatchOf = (turn: RecordedTurn, branch: Branch, request: ChatRequest): string | null => {
  const previous = turn.messages
  const m = request.messages
  if (!sameTools(branch.tools, request.tools)) return "the tools differ from the episode's"
  for (let i = 0; i < Math.min(previous.length, m.length); i++) if (!sameMessage(m[i]!, previous[i]!)) return `messages[${i}] differs from the episode's`
  if (m.length < previous.length + 2) {
    return `the request has ${m.length} messages; extending the episode needs its last ${previous.length}, the reply and at least one more`
  }
  if (!sameMessage(m[previous.length]!, turn.reply)) return `messages[${previous.length}] is not the reply the episode recorded`
  const injected = m.findIndex((x, i) => i > previous.length && x.role === "assistant")
  if (injected >= 0) return `messages[${injected}] is an assistant message the policy did not write`
  return null
}

/**
 * The episodes of a served policy.
 *
 * @example
 * const store = new EpisodeStore(byteChatFormat, byteTokenizer)
 * const plan = store.plan("e1", request)
 */
export class EpisodeStore {
  private readonly episodes = new Map<string, Episode>()

  constructor(
    private readonly format: ChatFormat,
    private readonly codec: TextCodec,
  ) {}

  /** Plan the next turn of episode `id` (null: a request outside any episode). Records nothing. */
  plan(id: string | null, request: ChatRequest): TurnPlan {
    const fresh = (): ReadonlyArray<number> => [this.codec.bos, ...this.codec.encode(this.format.prompt(request.messages, request.tools))]
    if (id === null) {
      const promptTokens = fresh()
      return { episode: null, branch: 0, context: promptTokens, observation: null, promptTokens, mismatch: null }
    }
    const episode = this.episodes.get(id) ?? { id, group: "", branches: [], reward: null, trained: false }
    if (episode.reward !== null) {
      throw new ServeRequestError({
        status: 409,
        type: "invalid_request_error",
        param: null,
        code: "episode_closed",
        message: `episode "${id}" already has a reward; start a new episode`,
      })
    }
    const branch = episode.branches[episode.branches.length - 1]
    const last = branch?.turns[branch.turns.length - 1]
    if (branch !== undefined && last !== undefined) {
      const mismatch = mismatchOf(last, branch, request)
      const text = mismatch === null
        ? this.format.continuation(
          { messages: last.messages, reply: last.reply, text: last.text, endedByEos: last.finish === "eos" },
          request.messages.slice(last.messages.length + 1),
          request.tools,
        )
        : null
      if (text !== null) {
        const tokens = this.codec.encode(text)
        return {
          episode,
          branch: episode.branches.length - 1,
          context: [...branchTokens(branch), ...tokens],
          observation: { tokens, text },
          promptTokens: null,
          mismatch: null,
        }
      }
      const promptTokens = fresh()
      return {
        episode,
        branch: episode.branches.length,
        context: promptTokens,
        observation: null,
        promptTokens,
        mismatch: mismatch ?? "the chat template does not render the conversation as an extension of the episode",
      }
    }
    const promptTokens = fresh()
    return {
      episode,
      branch: episode.branches.length === 0 ? 0 : episode.branches.length - 1,
      context: promptTokens,
      observation: null,
      promptTokens,
      mismatch: null,
    }
  }

  /** Record a sampled turn where `plan` said. */
  record(plan: TurnPlan, request: ChatRequest, turn: Omit<RecordedTurn, "feedbackTokens" | "feedbackText" | "messages">, group: string | null): void {
    const episode = plan.episode
    if (episode === null) return
    if (!this.episodes.has(episode.id)) {
      this.episodes.set(episode.id, episode)
    }
    if (plan.promptTokens !== null) {
      const branch: Branch = { promptTokens: plan.promptTokens, tools: request.tools, turns: [], mismatch: plan.mismatch }
      if (plan.branch < episode.branches.length) episode.branches[plan.branch] = branch
      else episode.branches.push(branch)
      if (episode.branches.length === 1) episode.group = group ?? `prompt-${hashTokens(plan.promptTokens)}`
    }
    const branch = episode.branches[plan.branch]!
    if (plan.observation !== null) {
      const last = branch.turns[branch.turns.length - 1]!
      last.feedbackTokens = plan.observation.tokens
      last.feedbackText = plan.observation.text
    }
    branch.turns.push({ ...turn, messages: request.messages, feedbackTokens: [], feedbackText: "" })
  }

  /** The episode named `id`; a 404 error when there is none. */
  get(id: string): Episode {
    const episode = this.episodes.get(id)
    if (episode === undefined) {
      throw new ServeRequestError({
        status: 404,
        type: "not_found_error",
        param: null,
        code: "episode_not_found",
        message: `no episode "${id}": send a chat request with it first`,
      })
    }
    return episode
  }

  /** Attach a reward; per-turn rewards must match the last branch's turns. */
  setReward(id: string, reward: EpisodeReward): Episode {
    const episode = this.get(id)
    const turns = episode.branches[episode.branches.length - 1]?.turns.length ?? 0
    if (typeof reward !== "number" && reward.length !== turns) {
      throw invalidRequest("invalid_reward", `${reward.length} per-turn rewards for an episode whose last branch has ${turns} turns`, "reward")
    }
    const values = typeof reward === "number" ? [reward] : reward
    if (values.some((r) => !Number.isFinite(r))) throw invalidRequest("invalid_reward", "rewards must be finite numbers", "reward")
    if (episode.trained) {
      throw new ServeRequestError({
        status: 409,
        type: "invalid_request_error",
        param: null,
        code: "episode_trained",
        message: `episode "${id}" was already trained on`,
      })
    }
    episode.reward = reward
    return episode
  }

  /** All episodes, oldest first. */
  all(): ReadonlyArray<Episode> {
    return [...this.episodes.values()]
  }
}

/** A short stable hash of a token list (names a group of episodes with the same prompt). */
export const hashTokens = (tokens: ReadonlyArray<number>): string => {
  let h = 0x811c9dc5
  for (const t of tokens) {
    h ^= t
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(16).padStart(8, "0")
}

/** An episode's total reward. */
export const totalReward = (reward: EpisodeReward): number => (typeof reward === "number" ? reward : reward.reduce((a, b) => a + b, 0))

/**
 * The trajectory of an episode's last branch, in the form the built-in rollout
 * produces. The outcome comes from the reward: `score` is the total clamped to
 * [0, 1], `correct` means a total above 0. A final turn without tool calls is the
 * answer.
 */
export const episodeTrajectory = (episode: Episode, groupId: string): Trajectory => {
  const branch = episode.branches[episode.branches.length - 1]!
  const total = episode.reward === null ? 0 : totalReward(episode.reward)
  const outcome: Outcome = { correct: total > 0, score: Math.min(1, Math.max(0, total)) }
  const turns = branch.turns.map((t, j): Turn => {
    const call = t.reply.toolCalls[0]
    const isLast = j === branch.turns.length - 1
    return {
      policyTokens: t.policyTokens,
      logprobs: t.logprobs,
      text: t.text,
      toolCall: call === undefined ? null : { language: call.name, code: t.reply.toolCalls.map((c) => c.arguments).join("\n") },
      malformed: t.malformed,
      feedbackTokens: t.feedbackTokens,
      feedbackText: t.feedbackText,
      answer: isLast && call === undefined && t.finish !== "length" && t.finish !== "context" ? t.reply.content : null,
    }
  })
  const last = branch.turns[branch.turns.length - 1]!
  const finishReason: FinishReason = last.finish === "length" || last.finish === "context"
    ? "token-budget"
    : last.reply.toolCalls.length > 0
    ? "turn-budget"
    : "answer"
  return { promptId: episode.group, groupId, promptTokens: branch.promptTokens, turns, outcome, finishReason }
}
