/**
 * What the hostile sync corpus shares: the baseline directory every case starts from, the
 * generated bulk of the "error at record 1,201" cases, and the `# expect:` line of a fixture.
 */

export const USERS = 30;

interface Expect {
  exit: number;
  code: string;
  line?: number;
  match?: RegExp;
  hidden?: string;
  prefix?: string;
  suffix?: string;
}


export function parseExpect(firstLine: string, file: string): Expect {
  const m = /^\uFEFF?# expect: (.*)$/.exec(firstLine);
  if (!m) throw new Error(`${file}: the first line must be "# expect: ..."`);
  const kv = new Map<string, string>();
  for (const part of (m[1] as string).split(' | ')) {
    const eq = part.indexOf('=');
    kv.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const num = (k: string) => (kv.has(k) ? Number(kv.get(k)) : undefined);
  return {
    exit: num('exit') ?? 2,
    code: kv.get('code') ?? '',
    ...(kv.has('line') ? { line: num('line') } : {}),
    ...(kv.has('match') ? { match: new RegExp(kv.get('match') as string, 'i') } : {}),
    ...(kv.has('hidden') ? { hidden: kv.get('hidden') } : {}),
    ...(kv.has('prefix') ? { prefix: kv.get('prefix') } : {}),
    ...(kv.has('suffix') ? { suffix: kv.get('suffix') } : {}),
  };
}

export function userLdif(uid: string, uuid: string, extra = ''): string {
  return `dn: uid=${uid},ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@lab.test\nentryUUID: ${uuid}\n${extra}`;
}

/** The directory every case starts from: 30 users in two groups. */
export function baseLdif(): string {
  const parts = [
    'version: 1\n',
    'dn: dc=lab,dc=test\nobjectClass: dcObject\nobjectClass: organization\ndc: lab\no: Lab\n',
    'dn: ou=people,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: people\n',
    'dn: ou=groups,dc=lab,dc=test\nobjectClass: organizationalUnit\nou: groups\n',
  ];
  for (let i = 0; i < USERS; i++) parts.push(userLdif(`u${i}`, `uuid-0000-u${i}`));
  for (const [g, from, to] of [['staff', 0, 20], ['admins', 20, 30]] as const) {
    const members = Array.from({ length: to - from }, (_, k) => `member: uid=u${from + k},ou=people,dc=lab,dc=test\n`).join('');
    parts.push(`dn: cn=${g},ou=groups,dc=lab,dc=test\nobjectClass: groupOfNames\ncn: ${g}\nentryUUID: uuid-group-${g}\n${members}`);
  }
  return `${parts.join('\n')}\n`;
}

/** 1,200 valid users (the body a syntax error at record 1,201 follows): 8 lines each. */
export function bulk1200(): string {
  return Array.from({ length: 1200 }, (_, i) => `${userLdif(`bulk${i}`, `bulk-${String(i).padStart(5, '0')}`)}\n`).join('');
}

