/**
 * The bundled sample directory for `idsync demo`: a fictional company (Contoso) generated
 * deterministically — the same input always gives the same LDIF, so a second demo run changes
 * nothing. Generated at run time rather than shipped as a data file.
 */
import { createHash } from 'node:crypto';

const GIVEN = ['Ada', 'Ben', 'Chloe', 'Dev', 'Elena', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Kira', 'Liam', 'Maya', 'Noah', 'Olga', 'Pablo', 'Quinn', 'Rosa', 'Sami', 'Tara', 'Umar', 'Vera', 'Wen', 'Xavi', 'Yara', 'Zoe'];
const FAMILY = ['Abbott', 'Bauer', 'Costa', 'Dubois', 'Eriksen', 'Fischer', 'Garcia', 'Haddad', 'Ivanova', 'Jensen', 'Kowalski', 'Lopez', 'Moreau', 'Nakamura', 'Okafor', 'Petrov', 'Quintero', 'Rossi', 'Schmidt', 'Tanaka', 'Usman', 'Varga', 'Weber', 'Yilmaz'];
const DEPARTMENTS = [
  { ou: 'Engineering', titles: ['Software Engineer', 'Senior Engineer', 'SRE', 'Engineering Manager'] },
  { ou: 'Sales', titles: ['Account Executive', 'Sales Engineer', 'Sales Manager'] },
  { ou: 'Finance', titles: ['Accountant', 'Controller', 'Financial Analyst'] },
  { ou: 'HR', titles: ['HR Partner', 'Recruiter'] },
  { ou: 'Operations', titles: ['Operations Analyst', 'Facilities Lead', 'IT Support'] },
];

export const SAMPLE_BASE_DN = 'dc=contoso,dc=example';
export const SAMPLE_DOMAIN = 'contoso.example';

/** A stable UUID-shaped anchor derived from a name (entryUUID in a real OpenLDAP). */
function uuidFor(name: string): string {
  const h = createHash('sha256').update(`idsync-sample:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface Entry {
  dn: string;
  attrs: [string, string][];
}

export interface SampleDirectory {
  ldif: string;
  users: number;
  groups: number;
  ous: number;
}

export function generateSampleDirectory(userCount = 300): SampleDirectory {
  const entries: Entry[] = [];
  entries.push({ dn: SAMPLE_BASE_DN, attrs: [['objectClass', 'top'], ['objectClass', 'dcObject'], ['objectClass', 'organization'], ['o', 'Contoso'], ['dc', 'contoso']] });
  for (const ou of ['People', 'Groups']) {
    entries.push({ dn: `ou=${ou},${SAMPLE_BASE_DN}`, attrs: [['objectClass', 'organizationalUnit'], ['ou', ou]] });
  }
  for (const d of DEPARTMENTS) {
    entries.push({ dn: `ou=${d.ou},ou=People,${SAMPLE_BASE_DN}`, attrs: [['objectClass', 'organizationalUnit'], ['ou', d.ou]] });
  }

  const byDept = new Map<string, string[]>();
  const managers: string[] = [];
  for (let i = 0; i < userCount; i++) {
    const given = GIVEN[i % GIVEN.length]!;
    const family = FAMILY[Math.floor(i / GIVEN.length) % FAMILY.length]!;
    const dept = DEPARTMENTS[i % DEPARTMENTS.length]!;
    const uid = `${given}.${family}${i >= GIVEN.length * FAMILY.length ? i : ''}`.toLowerCase();
    const dn = `uid=${uid},ou=${dept.ou},ou=People,${SAMPLE_BASE_DN}`;
    const title = dept.titles[i % dept.titles.length]!;
    entries.push({
      dn,
      attrs: [
        ['objectClass', 'inetOrgPerson'],
        ['uid', uid],
        ['cn', `${given} ${family}`],
        ['givenName', given],
        ['sn', family],
        ['displayName', `${given} ${family}`],
        ['mail', `${uid}@${SAMPLE_DOMAIN}`],
        ['title', title],
        ['departmentNumber', dept.ou],
        ['employeeNumber', String(10000 + i)],
        ['telephoneNumber', `+1 555 01${String(i).padStart(2, '0').slice(-2)}`],
        ['entryUUID', uuidFor(dn)],
      ],
    });
    byDept.set(dept.ou, [...(byDept.get(dept.ou) ?? []), dn]);
    if (title.endsWith('Manager') || title === 'Controller') managers.push(dn);
  }

  const groups: Entry[] = [];
  const group = (cn: string, members: string[], description: string) => {
    const dn = `cn=${cn},ou=Groups,${SAMPLE_BASE_DN}`;
    groups.push({
      dn,
      attrs: [['objectClass', 'groupOfNames'], ['cn', cn], ['description', description], ...members.map((m): [string, string] => ['member', m]), ['entryUUID', uuidFor(dn)]],
    });
    return dn;
  };
  const deptGroups = DEPARTMENTS.map((d) => group(`${d.ou} Staff`, byDept.get(d.ou) ?? [], `Everyone in ${d.ou}`));
  const eng = byDept.get('Engineering') ?? [];
  const platform = group('Platform Team', eng.filter((_, i) => i % 3 === 0), 'Platform engineering');
  const apps = group('Applications Team', eng.filter((_, i) => i % 3 === 1), 'Application engineering');
  group('Engineering All', [platform, apps, ...eng.filter((_, i) => i % 3 === 2)], 'Nested: both teams plus the rest of Engineering');
  group('Managers', managers, 'People managers');
  group('All Staff', deptGroups, 'Nested: every department group');
  group('VPN Users', [...(byDept.get('Sales') ?? []), platform], 'Remote access (nested Platform Team)');

  const all = [...entries, ...groups];
  const ldif = ['version: 1', '', ...all.map((e) => [`dn: ${e.dn}`, ...e.attrs.map(([k, v]) => `${k}: ${v}`), ''].join('\n'))].join('\n');
  return { ldif, users: userCount, groups: groups.length, ous: 2 + DEPARTMENTS.length };
}
