import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP forwarder in front of Postgres or Redis, so a test can take a dependency away
 * (refuse and cut every connection) and bring it back, without touching the real server.
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly clients = new Set<net.Socket>();
  private frozen = false;
  port = 0;
  /** Client connections accepted so far. */
  accepted = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(port = 0): Promise<this> {
    this.server = net.createServer((client) => {
      this.accepted += 1;
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      this.clients.add(client);
      client.on('close', () => this.clients.delete(client));
      client.pipe(upstream).pipe(client);
      if (this.frozen) client.pause();
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Cuts every open connection and stops listening: the dependency is gone. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }

  /**
   * Stops forwarding what clients send, keeping every connection open: the dependency hangs
   * (commands get no answer) rather than going away. `thaw` forwards what was held back.
   */
  freeze(): void {
    this.frozen = true;
    for (const client of this.clients) client.pause();
  }

  thaw(): void {
    this.frozen = false;
    for (const client of this.clients) client.resume();
  }

  /** Listens again on the same port: the dependency is back. */
  async restart(): Promise<void> {
    if (!this.server) await this.start(this.port);
  }
}
