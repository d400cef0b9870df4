/**
 * The command line explains itself: every command answers `--help` with its options,
 * commands that take `--set` list every settable key with its default (read from the
 * Schemas), and a wrong command line names what is wrong and exits 2 before any work.
 */
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { Recipe } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { cli } from "../../packages/cli/src/Cli.js"
import { usageOf } from "../../packages/cli/src/commands/usage.js"
import { settingsOf } from "../../packages/cli/src/commands/settings.js"
import { defaultRunConfig, resolveRun } from "../../packages/cli/src/run/resolve.js"
import { cli as run } from "../e2e/helpers.js"

const subcommands = cli.subcommands.flatMap((group) => group.commands)

/** The options each shipped command must list (a new command is checked by the loop below). */
const expectedOptions: Record<string, ReadonlyArray<string>> = {
  start: ["--set", "--out"],
  train: ["--set", "--config", "--resume", "--out"],
  eval: ["--checkpoint", "--config", "--set", "--temperature"],
  sample: ["--checkpoint", "--question", "--n", "--temperature", "--seed", "--set"],
  report: [],
  sft: ["--out", "--steps", "--batch", "--lr", "--config", "--set"],
  export: ["--checkpoint", "--out", "--dtype", "--config", "--set"],
  compare: ["--seeds", "--out", "--config", "--set"],
  exec: ["--lang", "--timeout-ms", "--memory-mb", "--session"],
}

/** The `key default` rows of the SETTINGS section. */
const settingRows = (help: string): Map<string, string> => {
  const section = help.slice(help.indexOf("SETTINGS"))
  const rows = new Map<string, string>()
  for (const match of section.matchAll(/^ {2}([A-Za-z]+(?:\.[A-Za-z]+)*) {2,}(\S+) {2,}\S/gm)) rows.set(match[1]!, match[2]!)
  return rows
}

describe("turnwise <command> --help", () => {
  it("the tree holds every shipped command", () => {
    expect(subcommands.map((c) => c.name)).toEqual(expect.arrayContaining(Object.keys(expectedOptions)))
  })

  it("every command in the tree, shipped or added later, answers --help with exit 0 on stdout", async () => {
    for (const command of subcommands) {
      const result = await run([command.name, "--help"])
      expect(result.code, command.name).toBe(0)
      expect(result.stdout, command.name).toMatch(new RegExp(`^USAGE\\n {2}turnwise ${command.name}\\b`, "m"))
      expect(result.stderr, command.name).toBe("")
    }
  })

  for (const name of Object.keys(expectedOptions)) {
    it(`${name} --help exits 0 and lists its options`, async () => {
      const result = await run([name, "--help"])
      expect(result.code, result.stderr).toBe(0)
      expect(result.stderr).toBe("")
      expect(result.stdout).toContain(`turnwise ${name}`)
      for (const option of expectedOptions[name]!) expect(result.stdout, option).toMatch(new RegExp(`^ {2}${option}\\b`, "m"))
      expect(result.stdout.includes("SETTINGS"), "a SETTINGS section exactly when --set is an option").toBe(expectedOptions[name]!.includes("--set"))
    })
  }

  it("every command's usage line names only options its help lists", async () => {
    for (const command of subcommands) {
      const synopsis = usageOf(command.annotations)?.synopsis
      expect(synopsis, command.name).toBeDefined()
      const help = (await run([command.name, "--help"])).stdout
      for (const option of synopsis!.match(/--[a-z-]+/g) ?? []) expect(help, `${command.name}: ${option}`).toMatch(new RegExp(`^ {2}${option}\\b`, "m"))
    }
  })

  it("turnwise help [command] is turnwise [command] --help", async () => {
    expect(await run(["help", "sample"])).toEqual(await run(["sample", "--help"]))
    const root = await run(["help"])
    expect(root.code).toBe(0)
    expect(root.stdout).toContain("COMMAND LINES")
  })

  it("turnwise --help lists every command's command line", async () => {
    const result = await run(["--help"])
    expect(result.code).toBe(0)
    for (const command of subcommands) expect(result.stdout).toContain(usageOf(command.annotations)!.synopsis)
  })

  it("train --help lists the run and recipe keys with the defaults that decoding uses", async () => {
    const help = (await run(["train", "--help"])).stdout
    expect(help).toMatch(/^ {2}returns\.options\.gamma +0\.9 +number in \[0, 1\]$/m)
    const rows = settingRows(help)
    const gtpo = Recipe.encode(recipes.gtpo!)
    expect(rows.get("returns.options.gamma")).toBe(String(gtpo.returns.options.gamma))
    expect(rows.get("rollout.groupSize")).toBe(String(gtpo.rollout.groupSize))
    expect(rows.get("loss.name")).toBe(gtpo.loss.name)
    expect(rows.get("train.steps")).toBe(String(defaultRunConfig.train.steps))
    expect(rows.get("task.evalCount")).toBe(String(defaultRunConfig.task.evalCount))
    expect(rows.get("backend")).toBe(defaultRunConfig.backend)
    // Every listed key, set to its listed default, is accepted and changes nothing.
    expect(rows.size).toBeGreaterThan(40)
    const sets = [...rows].map(([key, value]) => `${key}=${value}`)
    const resolved = resolveRun(recipes.gtpo!, defaultRunConfig, { file: {}, sets })
    expect(Recipe.encode(resolved.recipe)).toEqual(gtpo)
    expect(resolved.run).toEqual(defaultRunConfig)
  })

  it("shows a Schema's description, bounds and literals", () => {
    const Example = Schema.Struct({
      rate: Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)).annotate({ description: "how fast" }),
      mode: Schema.Literals(["fast", "slow"]),
      nested: Schema.Struct({ count: Schema.Int.check(Schema.isGreaterThanOrEqualTo(2)) }),
    })
    expect(settingsOf(Example, { rate: 0.5, mode: "fast", nested: { count: 3 } }, "example")).toEqual([
      { key: "example.rate", type: "number in (0, 1]", defaultValue: "0.5", doc: "how fast" },
      { key: "example.mode", type: "fast|slow", defaultValue: "fast", doc: undefined },
      { key: "example.nested.count", type: "integer >= 2", defaultValue: "3", doc: undefined },
    ])
  })
})

describe("a wrong command line", () => {
  it("names the bad flag, prints the usage and exits 2", async () => {
    const result = await run(["train", "gtpo", "--bogus", "1"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--bogus")
    expect(result.stderr).toContain("usage: turnwise train <recipe>")
    expect(result.stdout).toBe("")
  })

  it("names a bad value and the flag it was given to", async () => {
    const cases: Array<[ReadonlyArray<string>, RegExp]> = [
      [["eval", "--checkpoint", "x", "--temperature", "hot"], /--temperature: "hot"/],
      [["sample", "--checkpoint", "x", "--question", "1+1=?", "--n", "0"], /--n: "0"\. Expected: an integer of at least 1/],
      [["compare", "grpo", "gtpo", "--seeds", "0"], /--seeds: "0"/],
      [["exec", "--lang", "ruby"], /--lang must be js or python, got "ruby"/],
      [["exec", "--timeout-ms", "-5"], /--timeout-ms: "-5"\. Expected: a positive number/],
    ]
    for (const [argv, pattern] of cases) {
      const result = await run(argv)
      expect(result.code, argv.join(" ")).toBe(2)
      expect(result.stderr, argv.join(" ")).toMatch(pattern)
    }
  })

  it("says what a command needs when an argument or flag is missing", async () => {
    const cases: Array<[ReadonlyArray<string>, string]> = [
      [["report"], "report needs a run directory"],
      [["eval"], "eval needs --checkpoint DIR"],
      [["sample", "--checkpoint", "x"], "sample needs --checkpoint DIR and --question TEXT"],
      [["compare", "gtpo"], "compare needs at least two recipes"],
    ]
    for (const [argv, needs] of cases) {
      const result = await run(argv)
      expect(result.code, argv.join(" ")).toBe(2)
      expect(result.stderr).toContain(needs)
    }
  })

  it("names an unknown command and lists the commands; no command prints the help", async () => {
    const unknown = await run(["trian"])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/Unknown subcommand "trian"/)
    expect(unknown.stderr).toContain("commands: start, train, eval")
    const none = await run([])
    expect(none.code).toBe(2)
    expect(none.stdout).toContain("COMMAND LINES")
  })

  it("is told apart from a failure of the work, which exits 1", async () => {
    const result = await run(["report", "/nonexistent/run"])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^error: \/nonexistent\/run\/metrics\.jsonl: not found/)
  })
})
