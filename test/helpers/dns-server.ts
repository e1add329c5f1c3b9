// A DNS server on loopback for discovery tests: answers A and SRV questions from a table the
// test changes at will (dns-packet for the wire format, UDP). A name not in the table is NXDOMAIN;
// a name with an empty list answers with no records; `silent` drops every question (a dead server).
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket, { type Answer } from 'dns-packet';

export interface DnsServer {
  /** `127.0.0.1:<port>`, for `servers` / `Resolver.setServers`. */
  readonly address: string;
  /** name → IPv4 addresses (A) or SRV targets. */
  readonly a: Map<string, string[]>;
  readonly srv: Map<string, Array<{ target: string; port: number }>>;
  /** Questions asked so far. */
  readonly asked: string[];
  silent: boolean;
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<DnsServer> {
  const socket: Socket = createSocket('udp4');
  const a = new Map<string, string[]>();
  const srv = new Map<string, Array<{ target: string; port: number }>>();
  const asked: string[] = [];
  const server = { a, srv, asked, silent: false };
  socket.on('message', (message, from) => {
    if (server.silent) return;
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    asked.push(`${question.type} ${question.name}`);
    const answers: Answer[] = [];
    let known = false;
    if (question.type === 'A' && a.has(question.name)) {
      known = true;
      for (const ip of a.get(question.name)!) answers.push({ type: 'A', name: question.name, ttl: 1, data: ip });
    } else if (question.type === 'SRV' && srv.has(question.name)) {
      known = true;
      for (const r of srv.get(question.name)!)
        answers.push({ type: 'SRV', name: question.name, ttl: 1, data: { priority: 0, weight: 0, port: r.port, target: r.target } });
    } else if (a.has(question.name) || srv.has(question.name)) {
      known = true; // the name exists, without records of that type
    }
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
      questions: query.questions,
      answers,
    });
    socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return Object.assign(server, {
    address: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  });
}
