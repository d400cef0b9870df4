/**
 * What a command says about itself beyond the flags effect/cli documents: its
 * command line in one line (listed by `turnwise --help` and repeated under a wrong
 * invocation) and, for a command that needs inputs, a sentence naming them that
 * replaces the generic "missing argument" when they are left out.
 *
 * Stored as a command annotation, so the help and error output reads it from the
 * command tree and a new command documents itself in its own module.
 *
 * @category models
 */
import { Context } from "effect"
import { Command } from "effect/cli"

/** A command's one-line synopsis and what it needs. */
export interface Usage {
  /** e.g. `turnwise report <run-dir>` */
  readonly synopsis: string
  /** e.g. `report needs a run directory`; shown when a required input is missing. */
  readonly needs?: string
}

/**
 * The annotation key of {@link Usage}.
 *
 * @category models
 */
export class CommandUsage extends Context.Service<CommandUsage, Usage>()("turnwise/cli/CommandUsage") {}

/**
 * Attach a {@link Usage} to a command.
 *
 * @example
 * Command.make("report", { dir }, handler).pipe(withUsage({ synopsis: "turnwise report <run-dir>", needs: "report needs a run directory" }))
 *
 * @category combinators
 */
export const withUsage = (usage: Usage) => Command.annotate(CommandUsage, usage)

/** The usage attached to a command, if any. */
export const usageOf = (annotations: Context.Context<never>): Usage | undefined => Context.getOrUndefined(annotations, CommandUsage)
