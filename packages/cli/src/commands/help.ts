/**
 * Sections that turnwise adds to effect/cli's generated help: the command line of
 * every command under `turnwise --help`, and the `--set` keys (with defaults and
 * accepted values, read from the Schemas) under the help of each command that takes
 * `--set`.
 *
 * @category constructors
 */
import type { Command, HelpDoc } from "effect/cli"
import type { RecipeType } from "@turnwise/dsl"
import { serveSettingsHelp, settingsHelp } from "./settings.js"
import { usageOf } from "./usage.js"

/** `turnwise train <recipe> ...`, one line per subcommand of `root`. */
export const commandLines = (root: Command.Command.Any): Array<string> =>
  root.subcommands.flatMap((group) => group.commands.map((command) => usageOf(command.annotations)?.synopsis ?? `${root.name} ${command.name}`))

/**
 * The extra help of a command tree: command lines at the root, settings where `--set`
 * is a flag (with the defaults of `defaultRecipe`).
 *
 * @example
 * runCommand(cli, { version, extraHelp: extraHelp(cli, recipes.gtpo) })
 */
export const extraHelp = (root: Command.Command.Any, defaultRecipe: RecipeType) => (doc: HelpDoc.HelpDoc): Array<string> => {
  const sections: Array<string> = []
  if ((doc.commandPath?.length ?? 1) <= 1 && root.subcommands.length > 0) {
    sections.push(
      ["COMMAND LINES", ...commandLines(root).map((line) => `  ${line}`), "", `Run '${root.name} <subcommand> --help' for its options and --set keys.`].join(
        "\n",
      ),
    )
  }
  // serve's keys are the endpoint's own; every other command with --set takes run and recipe keys.
  if (doc.flags.some((flag) => flag.name === "set")) sections.push(doc.commandPath?.at(-1) === "serve" ? serveSettingsHelp() : settingsHelp(defaultRecipe))
  return sections
}
