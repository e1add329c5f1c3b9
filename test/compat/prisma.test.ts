import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import { prismaAdapter } from 'pg-replica-router/prisma';
import { describeOrm } from './harness.js';

// The generated client's type, loosely: the test only uses these members.
interface PersonDelegate {
  create(args: { data: { id: number; name: string } }): Promise<unknown>;
  findUnique(args: { where: { id: number } }): Promise<{ name: string } | null>;
  update(args: { where: { id: number }; data: { name: string } }): Promise<unknown>;
  delete(args: { where: { id: number } }): Promise<unknown>;
}
interface Prisma {
  person: PersonDelegate;
  $queryRawUnsafe<T>(sql: string): Promise<T>;
  $transaction<T>(fn: (tx: Prisma) => Promise<T>): Promise<T>;
  $disconnect(): Promise<void>;
}

let prisma: Prisma;
let direct: Prisma; // the same ORM pointed straight at a replica: the naive path

/**
 * `prisma generate` offline: generation does not run the schema engine, so any existing file
 * will do for PRISMA_SCHEMA_ENGINE_BINARY.
 */
function generate(): void {
  const fakeEngine = join(tmpdir(), 'pgrr-no-schema-engine');
  writeFileSync(fakeEngine, '');
  const schema = fileURLToPath(new URL('./prisma/schema.prisma', import.meta.url));
  const run = spawnSync('npx', ['prisma', 'generate', '--schema', schema], {
    encoding: 'utf8',
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: fakeEngine, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' },
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`prisma generate failed:\n${run.stdout}\n${run.stderr}`);
}

const portOf = async (client: Prisma) =>
  Number((await client.$queryRawUnsafe<Array<{ port: number }>>('select inet_server_port() as port'))[0]!.port);

describeOrm('Prisma', {
  async open(router, replicaUrl) {
    generate();
    // Generated just now (and git-ignored): imported by URL so type-checking does not need it.
    const generated = new URL('./prisma/generated/client.ts', import.meta.url).href;
    const { PrismaClient } = (await import(generated)) as { PrismaClient: new (options: object) => Prisma };
    prisma = new PrismaClient({ adapter: prismaAdapter(router) });
    direct = new PrismaClient({ adapter: new PrismaPg({ connectionString: replicaUrl }) });
  },
  async close() {
    await prisma.$disconnect();
    await direct.$disconnect();
  },
  async insert(id, name) {
    await prisma.person.create({ data: { id, name } });
  },
  async findName(id, via = 'router') {
    return (await (via === 'direct' ? direct : prisma).person.findUnique({ where: { id } }))?.name;
  },
  async update(id, name) {
    await prisma.person.update({ where: { id }, data: { name } });
  },
  async remove(id) {
    await prisma.person.delete({ where: { id } });
  },
  port: () => portOf(prisma),
  async transaction(id, name, fail) {
    return prisma.$transaction(async (tx) => {
      await tx.person.create({ data: { id, name } });
      const port = await portOf(tx);
      if (fail) throw new Error('roll back');
      return port;
    });
  },
  failing: () =>
    prisma
      .$queryRawUnsafe('select * from no_such_table')
      .catch((err: Error & { meta?: { driverAdapterError?: { cause?: { originalCode?: string } } } }) => {
        // Prisma maps driver errors to its own (P2010, …); PostgreSQL's SQLSTATE is kept in the cause.
        throw Object.assign(new Error(err.message), {
          code: err.meta?.driverAdapterError?.cause?.originalCode ?? (err as { code?: string }).code,
        });
      }),
});
