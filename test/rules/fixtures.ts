/** Shared sample objects and a helper to compile rules from a YAML-shaped object. */
import { compileRules, rulesSchema, type CompiledRules, type RulesInput } from '../../src/rules/index.js';
import type { SourceObject } from '../../src/connectors/types.js';

export const CONNECTORS = [
  { name: 'corp-ad', type: 'ad' },
  { name: 'partners', type: 'ldap' },
];

export function rules(input: RulesInput | undefined): CompiledRules {
  return compileRules(input === undefined ? undefined : rulesSchema.parse(input), CONNECTORS);
}

export const adUser: SourceObject = {
  anchor: 'AAAAAAAAAAAAAAAAAAAAAA==',
  objectType: 'user',
  dn: 'CN=Ann Lee,OU=Staff,DC=corp,DC=example,DC=com',
  attributes: {
    samaccountname: ['ann'],
    userprincipalname: ['ann@corp.example.com'],
    mail: ['Ann.Lee@Example.com'],
    givenname: ['Ann'],
    sn: ['Lee'],
    cn: ['Ann Lee'],
    department: ['Sales'],
    title: ['Engineer'],
    useraccountcontrol: ['512'],
    whencreated: ['20240115143045.0Z'],
    proxyaddresses: ['SMTP:ann@example.com', 'smtp:al@example.com'],
  },
};

export const contractor: SourceObject = {
  ...adUser,
  anchor: 'BBBBBBBBBBBBBBBBBBBBBB==',
  dn: 'CN=Carl Hire,OU=Contractors,DC=corp,DC=example,DC=com',
  attributes: { ...adUser.attributes, samaccountname: ['carl'], department: ['Contractors'] },
};

export const noDepartment: SourceObject = {
  ...adUser,
  anchor: 'CCCCCCCCCCCCCCCCCCCCCC==',
  attributes: Object.fromEntries(Object.entries(adUser.attributes).filter(([k]) => k !== 'department' && k !== 'displayname')),
};

export const ldapUser: SourceObject = {
  anchor: '6e1e4a1c-0000-4000-8000-000000000001',
  objectType: 'user',
  dn: 'uid=bob,ou=people,dc=partners,dc=test',
  attributes: { uid: ['bob'], mail: ['bob@partners.test'], cn: ['Bob Ray'], sn: ['Ray'], title: ['Consultant'] },
};

export const adGroup: SourceObject = {
  anchor: 'DDDDDDDDDDDDDDDDDDDDDD==',
  objectType: 'group',
  dn: 'CN=Cloud Users,OU=Groups,DC=corp,DC=example,DC=com',
  attributes: { samaccountname: ['cloud-users'], cn: ['Cloud Users'], member: [adUser.dn] },
};
