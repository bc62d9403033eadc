// The official WorkOS Node SDK (@workos-inc/node) against a running dsync.
//
// Started by tests/sdk/run.sh with the same environment as the Python file:
// DSYNC_BASE_URL, DSYNC_API_KEY, DSYNC_DIRECTORY_ID, DSYNC_USER_COUNT and
// DSYNC_SCRATCH_DIRECTORY_ID (deleted by the last test). Top-level tests of
// node:test run one after another, in file order.

import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import test from 'node:test';

import { WorkOS, NotFoundException, UnauthorizedException } from '@workos-inc/node';

const baseUrl = new URL(process.env.DSYNC_BASE_URL);
const apiKey = process.env.DSYNC_API_KEY;
const directoryId = process.env.DSYNC_DIRECTORY_ID;
const scratchDirectoryId = process.env.DSYNC_SCRATCH_DIRECTORY_ID;
const userCount = Number(process.env.DSYNC_USER_COUNT);

// The Node SDK takes a host and port, never a URL: requests always go to the
// root of the origin.
function client(key) {
  return new WorkOS(key, {
    apiHostname: baseUrl.hostname,
    port: Number(baseUrl.port),
    https: false,
    maxRetries: 0,
  });
}

const workos = client(apiKey);

/** Follows list_metadata.after by hand, as an application paging with a limit does. */
async function walk(list, options) {
  const ids = [];
  let after;
  for (let pages = 0; pages < 100; pages += 1) {
    const page = await list({ ...options, after });
    ids.push(...page.data.map((item) => item.id));
    after = page.listMetadata.after;
    if (!after) return { ids, items: page.data };
  }
  throw new Error('paging did not end after 100 pages');
}

test('wrong API key raises UnauthorizedException', async () => {
  await assert.rejects(client('sk_test_not_a_real_key').directorySync.listDirectories(), UnauthorizedException);
});

test('list directories finds the seeded directory', async () => {
  const all = await (await workos.directorySync.listDirectories()).autoPagination();
  assert.ok(all.some((directory) => directory.id === directoryId));

  const filtered = await workos.directorySync.listDirectories({ organizationId: 'org_sdk_compat' });
  assert.deepEqual(filtered.data.map((directory) => directory.id), [directoryId]);

  const searched = await workos.directorySync.listDirectories({ search: 'compat payroll' });
  assert.deepEqual(searched.data.map((directory) => directory.id), [directoryId]);
});

test('get directory maps the REST state', async () => {
  const directory = await workos.directorySync.getDirectory(directoryId);
  assert.equal(directory.id, directoryId);
  assert.equal(directory.type, 'sftp');
  // The SDK maps `linked` to `active`.
  assert.equal(directory.state, 'active');
  assert.ok(directory.externalKey);
});

test('get unknown directory raises NotFoundException', async () => {
  await assert.rejects(
    workos.directorySync.getDirectory('directory_01HZZZZZZZZZZZZZZZZZZZZZZZ'),
    NotFoundException,
  );
});

test('list users by directory, auto-paged and by cursor', async () => {
  const list = (options) => workos.directorySync.listUsers(options);
  const users = await (await list({ directory: directoryId })).autoPagination();
  assert.equal(users.length, userCount);
  assert.equal(new Set(users.map((user) => user.id)).size, userCount);

  const walked = await walk(list, { directory: directoryId, limit: 4 });
  assert.deepEqual(walked.ids, users.map((user) => user.id));

  const second = users.find((user) => user.idpId === '00002');
  assert.equal(second.email, 'person2@sdk-compat.test');
  assert.equal(second.firstName, 'Given2');
  assert.deepEqual(second.groups.map((group) => group.name), ['Engineering']);
});

test('list users by group', async () => {
  const groups = await workos.directorySync.listGroups({ directory: directoryId });
  const support = groups.data.find((group) => group.name === 'Support');
  const members = await (await workos.directorySync.listUsers({ group: support.id })).autoPagination();
  assert.deepEqual(members.map((user) => user.idpId).sort(), ['00005', '00010', '00015', '00020', '00025']);
});

test('list groups by directory and by user', async () => {
  const walked = await walk((options) => workos.directorySync.listGroups(options), { directory: directoryId, limit: 1 });
  assert.equal(walked.ids.length, 2);

  const users = await (await workos.directorySync.listUsers({ directory: directoryId })).autoPagination();
  const tenth = users.find((user) => user.idpId === '00010');
  const groups = await workos.directorySync.listGroups({ user: tenth.id });
  assert.deepEqual(groups.data.map((group) => group.name).sort(), ['Engineering', 'Support']);
});

test('get user and group', async () => {
  const page = await workos.directorySync.listUsers({ directory: directoryId, limit: 1 });
  const user = await workos.directorySync.getUser(page.data[0].id);
  assert.equal(user.id, page.data[0].id);
  assert.ok(Array.isArray(user.groups));

  const groups = await workos.directorySync.listGroups({ directory: directoryId, limit: 1 });
  const group = await workos.directorySync.getGroup(groups.data[0].id);
  assert.equal(group.name, groups.data[0].name);
});

test('list events with a cursor', async () => {
  const first = await workos.events.listEvents({ events: ['dsync.user.created'], limit: 3 });
  assert.equal(first.data.length, 3);
  assert.ok(first.listMetadata.after);

  const ids = [];
  let after;
  for (let pages = 0; pages < 100; pages += 1) {
    const page = await workos.events.listEvents({ events: ['dsync.user.created', 'dsync.activated'], limit: 7, after });
    ids.push(...page.data.filter((event) => event.event === 'dsync.user.created').map((event) => event.id));
    after = page.listMetadata.after;
    if (!after) break;
  }
  assert.ok(ids.length >= userCount, `only ${ids.length} dsync.user.created events`);
  assert.equal(new Set(ids).size, ids.length, 'an event came twice');
  assert.deepEqual([...ids].sort(), ids, 'events come oldest first');

  const userEvent = first.data[0];
  assert.equal(userEvent.event, 'dsync.user.created');
  assert.ok(userEvent.data.idpId);
});

test('webhook endpoint create, list, update and delete', async () => {
  const endpoint = await workos.webhooks.createWebhookEndpoint({
    endpointUrl: 'https://hooks.sdk-compat.test/node',
    events: ['dsync.user.created'],
  });
  try {
    assert.ok(endpoint.secret);
    assert.equal(endpoint.status, 'enabled');
    assert.ok(endpoint.createdAt instanceof Date);
    assert.ok(!Number.isNaN(endpoint.createdAt.getTime()), 'created_at parses as a date');

    const listed = await (await workos.webhooks.listWebhookEndpoints()).autoPagination();
    assert.equal(listed.find((item) => item.id === endpoint.id).secret, endpoint.secret);

    const updated = await workos.webhooks.updateWebhookEndpoint({ id: endpoint.id, status: 'disabled' });
    assert.equal(updated.status, 'disabled');
    assert.equal(updated.endpointUrl, 'https://hooks.sdk-compat.test/node');
  } finally {
    await workos.webhooks.deleteWebhookEndpoint({ id: endpoint.id });
  }
});

test('delete directory sends a webhook the SDK verifies', async () => {
  const deliveries = [];
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      deliveries.push({ signature: request.headers['workos-signature'], body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(200).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  const endpoint = await workos.webhooks.createWebhookEndpoint({
    endpointUrl: `http://127.0.0.1:${server.address().port}/hook`,
    events: ['dsync.deleted'],
  });
  try {
    await workos.directorySync.deleteDirectory(scratchDirectoryId);

    const deadline = Date.now() + 30_000;
    while (deliveries.length === 0) {
      assert.ok(Date.now() < deadline, 'no webhook arrived');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const { signature, body } = deliveries[0];
    const event = await workos.webhooks.constructEvent({ payload: body, sigHeader: signature, secret: endpoint.secret });
    assert.equal(event.event, 'dsync.deleted');
    assert.equal(event.data.id, scratchDirectoryId);

    // The parsed object re-serializes to the same bytes, because the body is compact JSON with raw UTF-8.
    await workos.webhooks.constructEvent({ payload: JSON.parse(body), sigHeader: signature, secret: endpoint.secret });

    await assert.rejects(
      workos.webhooks.constructEvent({ payload: body.replace('Node Scratch', 'Node Scratcx'), sigHeader: signature, secret: endpoint.secret }),
    );
  } finally {
    await workos.webhooks.deleteWebhookEndpoint({ id: endpoint.id });
    server.close();
  }

  // Deleting again is not an error.
  await workos.directorySync.deleteDirectory(scratchDirectoryId);
});
