/**
 * A TCP port free on this machine now: a runner advertises its address before it binds,
 * so its port is chosen first. (Another process could take it in between; the runner
 * then fails to bind and says so.)
 *
 * @category constructors
 */
import * as net from "node:net"

/**
 * @example
 * const port = await freePort("127.0.0.1")
 */
export const freePort = (host = "127.0.0.1"): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, host, () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
