// Smoke test of the AWS SDK for JavaScript v3 against a running lakenode node.
//
// Run as `node tests/js/s3_smoke.mjs` (tests/integration/test_js_sdk.py does), configured by
// environment variables:
//   LAKENODE_ENDPOINT    e.g. http://127.0.0.1:9000
//   LAKENODE_ACCESS_KEY  / LAKENODE_SECRET_KEY  static credentials
//   LAKENODE_REGION      e.g. us-east-1
//   LAKENODE_BUCKET      an existing, empty bucket the script may fill
//
// Prints one line per check ("PASS <name>: ..." or "FAIL <name>: ..."), then a final JSON
// summary line: {"ok": true, "checks": N, "objects": {...}}. "objects" lists the objects the
// script leaves behind (size, sha256, etag) so the caller can verify them independently.
// Exit code 0 only if every check passed, 1 if any failed, 2 on bad configuration.
//
// Checksums: the SDK is left at its defaults (requestChecksumCalculation "WHEN_SUPPORTED",
// responseChecksumValidation "WHEN_SUPPORTED"): it sends CRC32 with every upload and
// validates the checksums of the responses. Its presigned PutObject URLs carry
// x-amz-checksum-crc32=AAAAAA== (the CRC32 of an empty body, computed before any body
// exists) and x-amz-sdk-checksum-algorithm=CRC32; AWS accepts any body through them, and so
// must lakenode (check "presigned-put").

import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";

import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const MiB = 1024 * 1024;
const MULTIPART_SIZE = 12 * MiB + 12345; // 3 parts of at most 5 MiB
const PART_SIZE = 5 * MiB;
const EXPECTED_PARTS = Math.ceil(MULTIPART_SIZE / PART_SIZE);

function config() {
  const names = [
    "LAKENODE_ENDPOINT",
    "LAKENODE_ACCESS_KEY",
    "LAKENODE_SECRET_KEY",
    "LAKENODE_REGION",
    "LAKENODE_BUCKET",
  ];
  const missing = names.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    console.error(`missing environment variables: ${missing.join(", ")}`);
    process.exit(2);
  }
  return {
    endpoint: process.env.LAKENODE_ENDPOINT,
    accessKeyId: process.env.LAKENODE_ACCESS_KEY,
    secretAccessKey: process.env.LAKENODE_SECRET_KEY,
    region: process.env.LAKENODE_REGION,
    bucket: process.env.LAKENODE_BUCKET,
  };
}

const cfg = config();
const Bucket = cfg.bucket;
const client = new S3Client({
  endpoint: cfg.endpoint,
  region: cfg.region,
  forcePathStyle: true,
  credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
  maxAttempts: 1, // a retry could hide a server error
});

// Name the failing command in service errors (the SDK's errors do not say which call failed).
client.middlewareStack.add(
  (next, context) => async (args) => {
    try {
      return await next(args);
    } catch (error) {
      if (error && typeof error === "object") error.$command ??= context.commandName;
      throw error;
    }
  },
  { step: "initialize", name: "lakenodeNameFailingCommand" },
);

class CheckError extends Error {}

function expect(condition, message) {
  if (!condition) throw new CheckError(message);
}

function expectEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  expect(a === e, `${what}: expected ${e}, got ${a}`);
}

function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

async function getBytes(Key) {
  const response = await client.send(new GetObjectCommand({ Bucket, Key }));
  return { response, bytes: Buffer.from(await response.Body.transformToByteArray()) };
}

async function expectGone(Key) {
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
    throw new CheckError(`HeadObject ${Key} succeeded after delete (ETag ${head.ETag})`);
  } catch (error) {
    if (error instanceof CheckError) throw error;
    expect(
      error.name === "NotFound" && error.$metadata?.httpStatusCode === 404,
      `HeadObject ${Key}: expected NotFound/404, got ${error.name}/${error.$metadata?.httpStatusCode}`,
    );
  }
}

// Objects deliberately left in the bucket for the caller to verify.
const leftBehind = {};

function remember(Key, bytes, etag) {
  leftBehind[Key] = { size: bytes.length, sha256: sha256(bytes), etag };
}

async function readBackMultipart(Key, data, etag) {
  expect(
    new RegExp(`^"[0-9a-f]{32}-${EXPECTED_PARTS}"$`).test(etag),
    `${Key}: expected a multipart ETag ending in -${EXPECTED_PARTS}, got ${etag}`,
  );
  const { response, bytes } = await getBytes(Key);
  expectEqual(response.ContentLength, data.length, `${Key} ContentLength`);
  expectEqual(response.ETag, etag, `${Key} ETag on GET`);
  expectEqual(sha256(bytes), sha256(data), `${Key} sha256`);
  remember(Key, bytes, etag);
  return `${bytes.length} bytes, ETag ${etag}, sha256 ${sha256(bytes).slice(0, 16)}...`;
}

const checks = [
  [
    "put-get-object",
    async () => {
      const Key = "small/hello.txt";
      const body = Buffer.from(
        `hello from the AWS SDK for JavaScript v3 ${randomBytes(8).toString("hex")}\n`,
      );
      const put = await client.send(
        new PutObjectCommand({
          Bucket,
          Key,
          Body: body,
          ContentType: "text/x-lakenode-js",
          Metadata: { colour: "blue", "made-by": "s3_smoke.mjs" },
        }),
      );
      const md5 = createHash("md5").update(body).digest("hex");
      expectEqual(put.ETag, `"${md5}"`, "PutObject ETag");
      const { response, bytes } = await getBytes(Key);
      expect(bytes.equals(body), `GetObject bytes differ: ${JSON.stringify(bytes.toString())}`);
      expectEqual(response.ContentType, "text/x-lakenode-js", "ContentType");
      expectEqual(response.Metadata, { colour: "blue", "made-by": "s3_smoke.mjs" }, "Metadata");
      expectEqual(response.ETag, `"${md5}"`, "GetObject ETag");
      remember(Key, bytes, response.ETag);
      return `${body.length} bytes, ETag ${response.ETag}`;
    },
  ],
  [
    "put-object-stream-aws-chunked",
    async () => {
      // A stream body makes the SDK send aws-chunked encoding with an unsigned payload and a
      // trailing x-amz-checksum-crc32 (x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER).
      const Key = "small/streamed.bin";
      const data = randomBytes(300 * 1024 + 11);
      const put = await client.send(
        new PutObjectCommand({
          Bucket,
          Key,
          Body: Readable.from([data.subarray(0, 100000), data.subarray(100000)]),
          ContentLength: data.length,
        }),
      );
      const { response, bytes } = await getBytes(Key);
      expect(
        bytes.equals(data),
        `GetObject bytes differ (${bytes.length} vs ${data.length} bytes)`,
      );
      expectEqual(response.ETag, put.ETag, "ETag on GET");
      expect(
        response.ChecksumCRC32 === put.ChecksumCRC32 && put.ChecksumCRC32,
        `CRC32 ${put.ChecksumCRC32} on PUT vs ${response.ChecksumCRC32} on GET`,
      );
      remember(Key, bytes, response.ETag);
      return `${bytes.length} bytes, CRC32 ${put.ChecksumCRC32}`;
    },
  ],
  [
    "multipart-lib-storage-upload",
    async () => {
      const Key = "mpu/lib-storage.bin";
      const data = randomBytes(MULTIPART_SIZE);
      const parts = [];
      // A stream of unknown length, as Upload is mostly used: it cuts the parts itself.
      const chunks = [];
      for (let offset = 0; offset < data.length; offset += MiB)
        chunks.push(data.subarray(offset, offset + MiB));
      const upload = new Upload({
        client,
        params: {
          Bucket,
          Key,
          Body: Readable.from(chunks),
          ContentType: "application/octet-stream",
        },
        partSize: PART_SIZE,
        queueSize: 2,
        leavePartsOnError: false,
      });
      upload.on("httpUploadProgress", (progress) => parts.push(progress.part));
      const result = await upload.done();
      expect(
        new Set(parts).size === EXPECTED_PARTS,
        `expected ${EXPECTED_PARTS} parts, progress saw ${JSON.stringify(parts)}`,
      );
      return readBackMultipart(Key, data, result.ETag);
    },
  ],
  [
    "multipart-low-level-commands",
    async () => {
      const Key = "mpu/low-level.bin";
      const data = randomBytes(MULTIPART_SIZE);
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
      expect(typeof UploadId === "string" && UploadId.length > 0, `no UploadId: ${UploadId}`);
      const Parts = [];
      for (let n = 1, offset = 0; offset < data.length; n += 1, offset += PART_SIZE) {
        const part = await client.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId,
            PartNumber: n,
            Body: data.subarray(offset, offset + PART_SIZE),
          }),
        );
        expect(typeof part.ETag === "string", `UploadPart ${n}: no ETag`);
        // Echo every checksum the server returned for the part: if the SDK sent one, the
        // server may require it again in CompleteMultipartUpload.
        const entry = { PartNumber: n, ETag: part.ETag };
        for (const name of ["ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256"]) {
          if (part[name]) entry[name] = part[name];
        }
        Parts.push(entry);
      }
      expectEqual(Parts.length, EXPECTED_PARTS, "number of parts");
      const done = await client.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }),
      );
      return readBackMultipart(Key, data, done.ETag);
    },
  ],
  [
    "presigned-get",
    async () => {
      const Key = "small/presigned.bin";
      const body = randomBytes(4096 + 7);
      await client.send(new PutObjectCommand({ Bucket, Key, Body: body }));
      const url = await getSignedUrl(client, new GetObjectCommand({ Bucket, Key }), {
        expiresIn: 300,
      });
      const parsed = new URL(url);
      expectEqual(
        parsed.searchParams.get("X-Amz-Algorithm"),
        "AWS4-HMAC-SHA256",
        "presigned URL algorithm",
      );
      expect(parsed.searchParams.has("X-Amz-Signature"), `presigned URL has no signature: ${url}`);
      const response = await fetch(url);
      const fetched = Buffer.from(await response.arrayBuffer());
      expect(
        response.status === 200,
        `fetch presigned URL: HTTP ${response.status}: ${fetched.toString().slice(0, 500)}`,
      );
      expect(
        fetched.equals(body),
        `presigned GET bytes differ (${fetched.length} vs ${body.length} bytes)`,
      );

      // The same URL with a tampered signature must be refused.
      parsed.searchParams.set("X-Amz-Signature", "0".repeat(64));
      const forged = await fetch(parsed);
      await forged.arrayBuffer();
      expectEqual(forged.status, 403, "status of a presigned URL with a forged signature");
      remember(Key, fetched, response.headers.get("etag"));
      return `${fetched.length} bytes over fetch(), forged signature -> 403`;
    },
  ],
  [
    "conditional-put-if-none-match",
    async () => {
      // "Create only if absent", as data-lake writers commit: the second PUT must get 412.
      const Key = "small/conditional.txt";
      const first = Buffer.from("first writer wins\n");
      const put = await client.send(
        new PutObjectCommand({ Bucket, Key, Body: first, IfNoneMatch: "*" }),
      );
      const status = async (params) => {
        try {
          await client.send(new PutObjectCommand({ Bucket, Key, ...params }));
          return "200";
        } catch (error) {
          if (!error?.$metadata?.httpStatusCode) throw error;
          return `${error.$metadata.httpStatusCode} ${error.name}`;
        }
      };
      const second = Buffer.from("second writer must not overwrite\n");
      expectEqual(
        await status({ Body: second, IfNoneMatch: "*" }),
        "412 PreconditionFailed",
        "second PutObject with IfNoneMatch *",
      );
      expectEqual(
        await status({ Body: second, IfMatch: '"0123456789abcdef0123456789abcdef"' }),
        "412 PreconditionFailed",
        "PutObject with IfMatch of another ETag",
      );
      const { bytes } = await getBytes(Key);
      expect(bytes.equals(first), `the refused PUTs overwrote the object: ${bytes}`);
      // If-Match with the current ETag replaces it.
      const third = Buffer.from("compare-and-swap with the right ETag\n");
      expectEqual(await status({ Body: third, IfMatch: put.ETag }), "200", "IfMatch current");
      const after = await getBytes(Key);
      expect(after.bytes.equals(third), `IfMatch PUT did not replace the object`);
      remember(Key, after.bytes, after.response.ETag);
      return "IfNoneMatch * twice -> 200 then 412; IfMatch wrong -> 412, right -> 200";
    },
  ],
  [
    "presigned-put",
    async () => {
      // A presigned PutObject URL used by a plain HTTP client (a browser would do the same).
      const Key = "small/presigned-put.bin";
      const body = randomBytes(64 * 1024 + 3);
      const url = await getSignedUrl(client, new PutObjectCommand({ Bucket, Key }), {
        expiresIn: 300,
      });
      const response = await fetch(url, { method: "PUT", body });
      const text = await response.text();
      expect(
        response.status === 200,
        `PUT to presigned URL ${url}: HTTP ${response.status}: ${text.slice(0, 500)}`,
      );
      const md5 = createHash("md5").update(body).digest("hex");
      expectEqual(response.headers.get("etag"), `"${md5}"`, "presigned PUT ETag");
      const { bytes } = await getBytes(Key);
      expect(bytes.equals(body), "presigned PUT: stored bytes differ");
      remember(Key, bytes, `"${md5}"`);
      const query = [...new URL(url).searchParams.keys()].filter((k) => !k.startsWith("X-Amz-"));
      return `${body.length} bytes over fetch(); extra query parameters: ${JSON.stringify(query)}`;
    },
  ],
  [
    "list-objects-v2-prefix-delimiter",
    async () => {
      const keys = [
        "list/a.txt",
        "list/b.txt",
        "list/sub1/c.txt",
        "list/sub1/d.txt",
        "list/sub2/e.txt",
        "listing-not-under-prefix.txt",
      ];
      for (const Key of keys) {
        await client.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from(Key) }));
      }
      const page = await client.send(
        new ListObjectsV2Command({ Bucket, Prefix: "list/", Delimiter: "/" }),
      );
      expectEqual(
        (page.Contents ?? []).map((o) => o.Key),
        ["list/a.txt", "list/b.txt"],
        "Contents keys",
      );
      expectEqual(
        (page.Contents ?? []).map((o) => o.Size),
        ["list/a.txt".length, "list/b.txt".length],
        "Contents sizes",
      );
      expectEqual(
        (page.CommonPrefixes ?? []).map((p) => p.Prefix),
        ["list/sub1/", "list/sub2/"],
        "CommonPrefixes",
      );
      expectEqual(page.KeyCount, 4, "KeyCount");
      expectEqual(page.IsTruncated, false, "IsTruncated");
      expectEqual(page.Prefix, "list/", "Prefix");
      expectEqual(page.Delimiter, "/", "Delimiter");

      // Paginate one key at a time through the whole prefix, without a delimiter.
      const seen = [];
      let ContinuationToken;
      let pages = 0;
      do {
        const p = await client.send(
          new ListObjectsV2Command({ Bucket, Prefix: "list/", MaxKeys: 2, ContinuationToken }),
        );
        seen.push(...(p.Contents ?? []).map((o) => o.Key));
        ContinuationToken = p.IsTruncated ? p.NextContinuationToken : undefined;
        pages += 1;
        expect(pages <= 10, "pagination does not end");
      } while (ContinuationToken);
      expectEqual(seen, keys.slice(0, 5), "paginated keys under list/");
      return `2 keys + 2 common prefixes; ${seen.length} keys over ${pages} pages of 2`;
    },
  ],
  [
    "delete-object",
    async () => {
      const Key = "list/a.txt";
      await client.send(new DeleteObjectCommand({ Bucket, Key }));
      await expectGone(Key);
      // Deleting a missing key succeeds too (S3 semantics).
      await client.send(new DeleteObjectCommand({ Bucket, Key }));
      return `${Key} deleted, HeadObject -> NotFound`;
    },
  ],
  [
    "delete-objects",
    async () => {
      const keys = [
        "list/b.txt",
        "list/sub1/c.txt",
        "list/sub1/d.txt",
        "list/sub2/e.txt",
        "listing-not-under-prefix.txt",
      ];
      const result = await client.send(
        new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }),
      );
      expectEqual(result.Errors ?? [], [], "DeleteObjects Errors");
      expectEqual(
        (result.Deleted ?? []).map((d) => d.Key).sort(),
        [...keys].sort(),
        "DeleteObjects Deleted",
      );
      for (const Key of keys) await expectGone(Key);
      const rest = await client.send(new ListObjectsV2Command({ Bucket, Prefix: "list" }));
      expectEqual(rest.KeyCount, 0, "keys left under list");
      return `${keys.length} keys deleted, HeadObject -> NotFound for each`;
    },
  ],
];

function describe(error) {
  if (error instanceof CheckError) return error.message;
  const meta = error?.$metadata;
  if (meta?.httpStatusCode) {
    // A service error: the S3 error code and message say more than the SDK's stack.
    return `${error.$command ?? "request"}: HTTP ${meta.httpStatusCode} ${error.Code ?? error.name}: ${error.message} (request id ${meta.requestId ?? "?"})`;
  }
  return String(error?.stack ?? error);
}

const failed = [];
for (const [name, run] of checks) {
  try {
    const detail = await run();
    console.log(`PASS ${name}: ${detail}`);
  } catch (error) {
    failed.push(name);
    console.log(`FAIL ${name}: ${describe(error)}`);
  }
}
client.destroy();

console.log(
  JSON.stringify({ ok: failed.length === 0, checks: checks.length, failed, objects: leftBehind }),
);
process.exit(failed.length === 0 ? 0 : 1);
