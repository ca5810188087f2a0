// `minkube member ls|add|remove` and `minkube leader transfer`: the cluster's managers as the leader sees them; --json
// prints the answers as they came. Only `member ls` is retried (reads are safe to repeat; membership changes are not).
import { unexpectedAnswer } from '../client/api-client.js';
import { apiClientFor, keepCredentialApis } from './connection.js';
import { memberViewProblem, type MembersView } from '../contracts/services.js';
import { formatTable, printJson, printLine, type Output } from './output.js';

export async function runMemberList(apiUrl: string, out: Output): Promise<void> {
  const view = await apiClientFor(apiUrl, { readRetries: 2 }).listMembers();
  // The credentials file first: output piped into a reader that stops early (`| head -n 1`) ends the command there.
  if (view.leaderId !== null) await keepCredentialApis(apiUrl, view.members.map((m) => m.apiAddress));
  printMembers(view, out);
}

export async function runMemberAdd(apiUrl: string, member: { id: string; raftAddress: string; apiAddress: string }, out: Output): Promise<void> {
  const client = apiClientFor(apiUrl);
  const { created, member: m } = await client.addMember(member);
  // Not in the client's table of answers: a joining manager words this check its own way (manager/join.ts).
  const problem = memberViewProblem(m);
  if (problem !== null) throw unexpectedAnswer('POST', `${client.baseUrl}/v1/cluster/members`, `the member added${problem}`);
  if (out.json) {
    printJson(m);
    return;
  }
  const where = `raft ${m.raftAddress}, api ${m.apiAddress}`;
  if (!created) printLine(`${m.id} is already a member (${roleOf(m.voter)}): ${where}`);
  else if (m.voter) printLine(`added ${m.id} as a voter: ${where}`);
  else printLine(`added ${m.id} as a learner: ${where}; the leader makes it a voter once it has caught up`);
}

export async function runMemberRemove(apiUrl: string, id: string, out: Output): Promise<void> {
  const view = await apiClientFor(apiUrl).removeMember(id);
  await keepCredentialApis(apiUrl, view.members.map((m) => m.apiAddress));
  if (!out.json) printLine(`removed ${id}`);
  printMembers(view, out);
}

export async function runLeaderTransfer(apiUrl: string, id: string | null, out: Output): Promise<void> {
  const r = await apiClientFor(apiUrl).transferLeader(id);
  if (out.json) printJson(r);
  else printLine(`leader is now ${r.leaderId} (term ${r.term})`);
}

/** One row per member, * marks the leader. */
function printMembers(view: MembersView, out: Output): void {
  if (out.json) {
    printJson(view);
    return;
  }
  const rows = [['ID', 'ROLE', 'LEADER', 'RAFT', 'API', 'REACHABLE']];
  for (const m of view.members) {
    rows.push([m.id, roleOf(m.voter), m.id === view.leaderId ? '*' : '', m.raftAddress, m.apiAddress, m.reachable ? 'yes' : 'no']);
  }
  printLine(formatTable(rows));
  if (view.leaderId === null) printLine('leader: none known');
}

function roleOf(voter: boolean): string {
  return voter ? 'voter' : 'learner';
}
