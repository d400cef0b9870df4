/** The `turnwise` executable: node I/O around {@link main}. */
import { main } from "./Cli.js"

const readStdin = async (): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

process.exitCode = await main(process.argv.slice(2), {
  log: (line) => process.stderr.write(line + "\n"),
  stdout: (text) => process.stdout.write(text),
  readStdin,
  tty: process.stdout.isTTY === true,
})
