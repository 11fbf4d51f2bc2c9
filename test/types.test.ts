import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { generateTypes, typeName } from '../src/cli/types.ts';

const root = join(import.meta.dir, '..');

describe('bun run types', () => {
  test('the checked-in fixture is what the shipped channels.toml generates (tsc compiles test/client-types.ts against it)', async () => {
    const file = join(root, 'channels.toml');
    const generated = await generateTypes(await Bun.file(file).text(), file);
    expect(generated).toBe(await Bun.file(join(import.meta.dir, 'fixtures', 'channels.d.ts')).text());
  });

  test('raw channels are strings, schema channels get a named type, odd names stay exact keys', async () => {
    const toml = [
      '[channels."chat room"]',
      '[channels."2fa"]',
      '[channels."2fa".schema]',
      'type = "object"',
      'required = ["code"]',
      '[channels."2fa".schema.properties.code]',
      'type = "string"',
      '[channels."quote\\"d"]',
    ].join('\n');
    const generated = await generateTypes(toml, join(root, 'channels.toml'));
    expect(generated).toContain('"chat room": string;');
    expect(generated).toContain('"quote\\"d": string;');
    const name = /"2fa": (\w+);/.exec(generated)?.[1];
    expect(name).toMatch(/^Channel2fa$/i);
    expect(generated).toContain(`export interface ${name} {\n  code: string;\n}`);
  });

  test('type names are unique even when channel names collapse to the same words', () => {
    const taken = new Set<string>();
    expect(['chat room', 'chat-room', 'chat_room', ''].map((name) => typeName(name, taken))).toEqual([
      'ChatRoom',
      'ChatRoom2',
      'ChatRoom3',
      'Channel',
    ]);
  });
});
