// The object browser's script: uploads straight to S3 with presigned URLs (progress bar,
// cancel), and the share link's Copy button. Plain JavaScript, no framework.
// Untrusted text (keys, S3's messages) is only ever set with textContent.
"use strict";

(function () {
  const PARALLEL_PARTS = 4;
  const URL_BATCH = 16; // part URLs asked of the console at a time

  class Cancelled extends Error {}

  // S3's error document as "Code: Message"; else the HTTP status.
  function s3Error(xhr) {
    const doc = xhr.responseXML;
    const code = doc && doc.querySelector("Error > Code");
    if (code) {
      const message = doc.querySelector("Error > Message");
      return code.textContent + ": " + (message ? message.textContent : "");
    }
    return "HTTP " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "");
  }

  class Upload {
    constructor(ui, file) {
      this.ui = ui;
      this.file = file;
      this.key = ui.keyPrefix + file.name;
      this.requests = new Set();
      this.loaded = new Map(); // part number -> bytes sent
      this.cancelled = false;
      this.abortUrl = null;
    }

    async run() {
      if (this.file.size <= this.ui.singleMax) {
        const signed = await this.presign({ op: "put" });
        this.checkCancelled();
        const type = this.file.type || "application/octet-stream";
        await this.send("PUT", signed.url, this.file, 1, type);
      } else {
        await this.multipart();
      }
    }

    async multipart() {
      const file = this.file;
      const start = await this.presign({
        op: "multipart", size: file.size, content_type: file.type,
      });
      this.abortUrl = start.abort_url;
      try {
        this.checkCancelled();
        const etags = await this.sendParts(start);
        const xhr = await this.send("POST", start.complete_url, completeDocument(etags));
        // CompleteMultipartUpload may answer 200 with an error document.
        if (xhr.responseXML && xhr.responseXML.documentElement.nodeName === "Error") {
          throw new Error(s3Error(xhr));
        }
      } catch (error) {
        this.cancel(); // stop the other parts before the abort, whatever failed
        await this.abortUpload();
        throw error;
      }
    }

    async sendParts(start) {
      const file = this.file;
      const etags = new Array(start.parts);
      const batches = new Map(); // batch index -> promise of {number: url}
      const urlOf = async (number) => {
        const batch = Math.floor((number - 1) / URL_BATCH);
        if (!batches.has(batch)) {
          const numbers = [];
          const last = Math.min(start.parts, (batch + 1) * URL_BATCH);
          for (let n = batch * URL_BATCH + 1; n <= last; n++) numbers.push(n);
          batches.set(batch, this.presign({
            op: "parts", upload_id: start.upload_id, numbers: numbers,
          }).then((answer) => answer.urls));
        }
        return (await batches.get(batch))[String(number)];
      };
      let next = 1;
      const worker = async () => {
        while (next <= start.parts) {
          const number = next++;
          const from = (number - 1) * start.part_size;
          const part = file.slice(from, Math.min(from + start.part_size, file.size));
          const url = await urlOf(number);
          this.checkCancelled();
          const xhr = await this.send("PUT", url, part, number);
          etags[number - 1] = xhr.getResponseHeader("ETag");
          this.loaded.set(number, part.size);
          this.report();
        }
      };
      const workers = [];
      for (let i = 0; i < Math.min(PARALLEL_PARTS, start.parts); i++) workers.push(worker());
      await Promise.all(workers);
      return etags;
    }

    async presign(fields) {
      const body = Object.assign({ bucket: this.ui.bucket, key: this.key }, fields);
      const answer = await fetch(this.ui.presignUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": this.ui.csrf },
        body: JSON.stringify(body),
      });
      let document = {};
      try {
        document = await answer.json();
      } catch (_notJson) {
        document = {};
      }
      if (!answer.ok) throw new Error(document.error || "HTTP " + answer.status);
      return document;
    }

    // One request to S3; progress of its body counts for ``part`` when given.
    send(method, url, body, part, contentType) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        this.requests.add(xhr);
        xhr.open(method, url);
        if (contentType) xhr.setRequestHeader("Content-Type", contentType);
        if (part !== undefined) {
          xhr.upload.addEventListener("progress", (event) => {
            this.loaded.set(part, event.loaded);
            this.report();
          });
        }
        const done = (outcome) => () => {
          this.requests.delete(xhr);
          outcome();
        };
        xhr.addEventListener("load", done(() => {
          if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
          else reject(new Error(s3Error(xhr)));
        }));
        xhr.addEventListener("error", done(() => reject(new Error("The connection to S3 failed."))));
        xhr.addEventListener("abort", done(() => reject(new Cancelled("cancelled"))));
        xhr.send(body === undefined ? null : body);
      });
    }

    report() {
      let sent = 0;
      for (const bytes of this.loaded.values()) sent += bytes;
      const share = this.file.size ? Math.min(100, (100 * sent) / this.file.size) : 100;
      this.ui.showProgress(share);
    }

    checkCancelled() {
      if (this.cancelled) throw new Cancelled("cancelled");
    }

    cancel() {
      this.cancelled = true;
      this.stopRequests();
    }

    stopRequests() {
      for (const xhr of Array.from(this.requests)) xhr.abort();
    }

    // AbortMultipartUpload, so no parts are left behind (S3 keeps them until then).
    async abortUpload() {
      if (!this.abortUrl) return;
      const url = this.abortUrl;
      this.abortUrl = null;
      try {
        await this.send("DELETE", url);
      } catch (error) {
        this.ui.say("The upload could not be aborted: " + error.message, true);
        throw error;
      }
    }
  }

  function completeDocument(etags) {
    const doc = document.implementation.createDocument(
      "http://s3.amazonaws.com/doc/2006-03-01/", "CompleteMultipartUpload", null);
    etags.forEach((etag, index) => {
      const part = doc.createElementNS(doc.documentElement.namespaceURI, "Part");
      const number = doc.createElementNS(doc.documentElement.namespaceURI, "PartNumber");
      number.textContent = String(index + 1);
      const tag = doc.createElementNS(doc.documentElement.namespaceURI, "ETag");
      tag.textContent = etag;
      part.append(number, tag);
      doc.documentElement.append(part);
    });
    return new XMLSerializer().serializeToString(doc);
  }

  class UploadPanel {
    constructor(section) {
      this.presignUrl = section.dataset.presign;
      this.csrf = section.dataset.csrf;
      this.bucket = section.dataset.bucket;
      this.keyPrefix = section.dataset.prefix;
      this.singleMax = Number(section.dataset.singleMax);
      this.input = document.getElementById("upload-file");
      this.drop = document.getElementById("upload-drop");
      this.status = document.getElementById("upload-status");
      this.name = document.getElementById("upload-name");
      this.bar = document.getElementById("upload-progress");
      this.percent = document.getElementById("upload-percent");
      this.cancelButton = document.getElementById("upload-cancel");
      this.message = document.getElementById("upload-message");
      this.current = null;
      this.busy = false;
      this.input.addEventListener("change", () => this.start(Array.from(this.input.files)));
      this.drop.addEventListener("dragover", (event) => {
        event.preventDefault();
        this.drop.classList.add("over");
      });
      this.drop.addEventListener("dragleave", () => this.drop.classList.remove("over"));
      this.drop.addEventListener("drop", (event) => {
        event.preventDefault();
        this.drop.classList.remove("over");
        this.start(Array.from(event.dataTransfer.files));
      });
      this.cancelButton.addEventListener("click", () => {
        if (this.current) this.current.cancel();
      });
    }

    async start(files) {
      if (this.busy || files.length === 0) return;
      this.busy = true;
      this.input.disabled = true;
      let failed = false;
      for (const file of files) {
        this.current = new Upload(this, file);
        this.name.textContent = this.current.key;
        this.showProgress(0);
        this.status.hidden = false;
        this.say("Uploading " + this.current.key + " …", false);
        try {
          await this.current.run();
        } catch (error) {
          failed = true;
          if (error instanceof Cancelled) this.say("Upload cancelled: " + this.current.key, false);
          else this.say("Upload of " + this.current.key + " failed: " + error.message, true);
          break;
        }
      }
      this.current = null;
      this.status.hidden = true;
      this.input.disabled = false;
      this.input.value = "";
      this.busy = false;
      if (!failed) {
        this.say("Uploaded. Refreshing the list …", false);
        window.location.reload();
      }
    }

    showProgress(share) {
      this.bar.value = share;
      this.percent.textContent = Math.floor(share) + "%";
    }

    say(text, isError) {
      this.message.textContent = text;
      this.message.classList.toggle("error", isError);
    }
  }

  function shareCopy() {
    const url = document.getElementById("share-url");
    const button = document.getElementById("share-copy");
    if (!url || !button) return;
    url.addEventListener("focus", () => url.select());
    button.addEventListener("click", async () => {
      url.select();
      try {
        await navigator.clipboard.writeText(url.value);
        button.textContent = "Copied";
      } catch (_refused) {
        // Clipboard API needs a secure context: the selected text can still be copied.
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("upload");
    if (section) new UploadPanel(section);
    shareCopy();
  });
})();
