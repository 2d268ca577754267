// The console: sign-in, instances per region, an instance's Snapshots tab. Every action is a
// signed API 3.0 call (api.js); pages poll once a second while an operation runs and stop
// when none does. The DOM is built with createElement/textContent only: no HTML from data.
import { ApiError, call, language, session, setLanguage, signIn, signOut } from "./api.js";
import { LANGUAGES, t } from "./i18n.js";

const POLL_MS = 1000;
const BUSY_STATES = new Set(["PENDING", "STARTING", "STOPPING", "REBOOTING", "CREATING",
  "ROLLBACKING"]);
const app = document.getElementById("app");
let timer = null;
let view = null; // the current page's refresh function

const tr = (key, values) => t(language(), key, values);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function showError(error) {
  const box = document.getElementById("error");
  if (!box) return;
  if (!error) {
    box.textContent = "";
    return;
  }
  const id = error.requestId ? ` (RequestId ${error.requestId})` : "";
  box.textContent = error instanceof ApiError ? `${error.code}: ${error.message}${id}` : String(error);
}

async function act(work) {
  showError(null);
  try {
    await work();
  } catch (error) {
    if (error instanceof ApiError && error.code.startsWith("AuthFailure") && !session()) {
      route("#/signin");
      return;
    }
    showError(error);
  }
  if (view) await view();
}

function schedule(busy) {
  clearTimeout(timer);
  timer = null;
  const status = document.getElementById("status");
  if (status) status.textContent = busy ? tr("updating") : "";
  if (busy) timer = setTimeout(() => view && view(), POLL_MS);
}

function params() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query);
}

function region() {
  return params().get("region") || sessionStorage.getItem("lightkeeper.region") || "ap-guangzhou";
}

function time(value) {
  return value ? value.replace("T", " ").replace("Z", " UTC") : "-";
}

// -- header ---------------------------------------------------------------------------------

function renderHeader() {
  document.documentElement.lang = language() === "zh-CN" ? "zh-CN" : "en";
  document.title = tr("title");
  document.getElementById("title").textContent = tr("title");
  document.getElementById("language-label").textContent = tr("language");
  const select = document.getElementById("language");
  if (!select.options.length) {
    for (const [code, name] of LANGUAGES) select.append(h("option", { value: code, text: name }));
    select.addEventListener("change", () => {
      setLanguage(select.value);
      render(); // the whole page again, in the new language
    });
  }
  select.value = language();
  const current = session();
  const out = document.getElementById("sign-out");
  out.hidden = !current;
  out.textContent = tr("signOut");
  document.getElementById("who").textContent = current ? `${tr("signedInAs")} ${current.who}` : "";
  document.getElementById("confirm-cancel").textContent = tr("cancel");
  document.getElementById("confirm-ok").textContent = tr("confirm");
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  sessionStorage.removeItem("lightkeeper.region");
  route("#/signin");
});

// -- the confirmation dialog ------------------------------------------------------------------

function confirmDialog(title, text, warning) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-warning").textContent = warning || "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// -- sign-in ----------------------------------------------------------------------------------

function signInPage() {
  view = null;
  schedule(false);
  const id = h("input", { id: "secret-id", name: "secret-id", autocomplete: "username",
    required: true, spellcheck: "false" });
  const key = h("input", { id: "secret-key", name: "secret-key", type: "password",
    autocomplete: "off", required: true });
  const form = h("form", { class: "signin", novalidate: true },
    h("h2", { text: tr("signIn") }),
    h("label", { for: "secret-id", text: tr("secretId") }), id,
    h("label", { for: "secret-key", text: tr("secretKey") }), key,
    h("p", { class: "help", text: tr("signInHelp") }),
    h("div", { id: "error", class: "alert", role: "alert" }),
    h("button", { type: "submit", class: "primary", id: "sign-in", text: tr("signIn") }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    try {
      await signIn(id.value.trim(), key.value);
      key.value = "";
      route("#/instances");
    } catch (error) {
      key.value = "";
      showError(error);
    }
  });
  app.replaceChildren(form);
  id.focus();
}

// -- instances ---------------------------------------------------------------------------------

function powerButtons(instance) {
  const power = (action) => act(() => call(action, { InstanceIds: [instance.InstanceId] },
    region()));
  const label = (key) => `${tr(key)} ${instance.InstanceName}`;
  return [
    h("button", { type: "button", "aria-label": label("start"), "data-action": "start",
      onclick: () => power("StartInstances"), text: tr("start") }),
    h("button", { type: "button", "aria-label": label("stop"), "data-action": "stop",
      onclick: () => power("StopInstances"), text: tr("stop") }),
    h("button", { type: "button", "aria-label": label("reboot"), "data-action": "reboot",
      onclick: () => power("RebootInstances"), text: tr("reboot") }),
  ];
}

function busyInstance(instance) {
  return BUSY_STATES.has(instance.InstanceState) || instance.LatestOperationState === "OPERATING";
}

async function regionSelect() {
  const select = h("select", { id: "region" });
  const reply = await call("DescribeRegions", {});
  for (const r of reply.RegionSet) {
    select.append(h("option", { value: r.Region, text: `${r.RegionName} (${r.Region})` }));
  }
  select.value = region();
  select.addEventListener("change", () => {
    sessionStorage.setItem("lightkeeper.region", select.value);
    route(`#/instances?region=${encodeURIComponent(select.value)}`);
  });
  return select;
}

async function instancesPage() {
  const page = [
    h("h2", { text: tr("instances") }),
    h("div", { class: "row" }, h("label", { for: "region", text: tr("region") })),
    h("div", { id: "error", class: "alert", role: "alert" }),
    h("p", { id: "status", class: "status", "aria-live": "polite" }),
    h("div", { id: "content", class: "table-wrap" }),
  ];
  app.replaceChildren(...page);
  try {
    page[1].append(await regionSelect());
  } catch (error) {
    showError(error);
  }
  view = async () => {
    let reply;
    try {
      reply = await call("DescribeInstances", { Limit: 100 }, region());
    } catch (error) {
      showError(error);
      schedule(false);
      return;
    }
    const rows = reply.InstanceSet.map((i) => h("tr", { "data-instance": i.InstanceId },
      h("td", {}, h("a", { href: `#/instance/${i.InstanceId}?region=${region()}`,
        text: i.InstanceName })),
      h("td", { text: i.InstanceId }),
      h("td", { class: `state-${i.InstanceState}`, "data-field": "state",
        text: i.InstanceState }),
      h("td", { class: "optional", text: (i.PublicAddresses || []).join(", ") || "-" }),
      h("td", { class: "optional", text: i.BundleId }),
      h("td", { class: "optional", text: `${i.SystemDisk.DiskId} (${i.SystemDisk.DiskSize} GB)` }),
      h("td", {}, h("div", { class: "row" }, powerButtons(i)))));
    const content = document.getElementById("content");
    if (!content) return;
    content.replaceChildren(rows.length
      ? h("table", {}, h("caption", { class: "help", text: `${tr("instances")}: ${region()}` }),
        h("thead", {}, h("tr", {}, ["name", "id", "state", "ip", "bundle", "disk", "actions"]
          .map((k) => h("th", { scope: "col",
            class: ["ip", "bundle", "disk"].includes(k) ? "optional" : null, text: tr(k) })))),
        h("tbody", {}, rows))
      : h("p", { text: tr("noInstances") }));
    schedule(reply.InstanceSet.some(busyInstance));
  };
  await view();
}

// -- an instance and its snapshots ------------------------------------------------------------

async function instancePage(instanceId) {
  const nameInput = h("input", { id: "snapshot-name", maxlength: "60" });
  const page = [
    h("p", {}, h("a", { href: `#/instances?region=${region()}`, text: `← ${tr("back")}` })),
    h("div", { id: "instance" }),
    h("div", { id: "error", class: "alert", role: "alert" }),
    h("p", { id: "status", class: "status", "aria-live": "polite" }),
    h("h2", { id: "snapshots-tab", text: tr("snapshots") }),
    h("p", { id: "quota" }),
    h("form", { class: "row", id: "create-form" },
      h("label", { for: "snapshot-name", text: tr("snapshotName") }), nameInput,
      h("button", { type: "submit", class: "primary", id: "create", text: tr("create") })),
    h("div", { class: "row" }, h("button", { type: "button", id: "delete-selected",
      class: "danger", text: tr("deleteSelected") })),
    h("div", { id: "content", class: "table-wrap" }),
  ];
  app.replaceChildren(...page);
  let instance = null;
  let renaming = null;

  document.getElementById("create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    act(async () => {
      await call("CreateInstanceSnapshot",
        name ? { InstanceId: instanceId, SnapshotName: name } : { InstanceId: instanceId },
        region());
      nameInput.value = "";
    });
  });
  document.getElementById("delete-selected").addEventListener("click", async () => {
    const ids = [...document.querySelectorAll("input[data-select]:checked")]
      .map((box) => box.dataset.select);
    if (!ids.length) return;
    if (await confirmDialog(tr("deleteTitle", { count: ids.length }),
      tr("deleteText", { ids: ids.join(", ") }))) {
      act(() => call("DeleteSnapshots", { SnapshotIds: ids }, region()));
    }
  });

  async function rollBack(snapshot) {
    const running = instance && instance.InstanceState === "RUNNING";
    const ok = await confirmDialog(tr("rollbackTitle", { instance: instanceId }),
      tr("rollbackText", { snapshot: snapshot.SnapshotId }),
      running ? tr("rollbackRunning", { instance: instanceId }) : "");
    if (ok) {
      act(() => call("ApplyInstanceSnapshot",
        { InstanceId: instanceId, SnapshotId: snapshot.SnapshotId }, region()));
    }
  }

  function nameCell(snapshot) {
    if (renaming !== snapshot.SnapshotId) {
      return h("td", {}, h("span", { "data-field": "name", text: snapshot.SnapshotName }), " ",
        h("button", { type: "button", "aria-label": `${tr("rename")} ${snapshot.SnapshotId}`,
          "data-action": "rename", onclick: () => { renaming = snapshot.SnapshotId; view(); },
          text: tr("rename") }));
    }
    const input = h("input", { id: `rename-${snapshot.SnapshotId}`, value: snapshot.SnapshotName,
      maxlength: "60", "aria-label": tr("newName", { id: snapshot.SnapshotId }) });
    const form = h("form", { class: "row" }, input,
      h("button", { type: "submit", text: tr("save"), "data-action": "save" }),
      h("button", { type: "button", text: tr("cancel"),
        onclick: () => { renaming = null; view(); } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      renaming = null;
      act(() => call("ModifySnapshotAttribute",
        { SnapshotId: snapshot.SnapshotId, SnapshotName: input.value.trim() }, region()));
    });
    setTimeout(() => input.focus(), 0);
    return h("td", {}, form);
  }

  view = async () => {
    let found;
    let snaps;
    try {
      found = await call("DescribeInstances", { InstanceIds: [instanceId] }, region());
      snaps = await call("DescribeSnapshots", {
        Filters: [{ Name: "instance-id", Values: [instanceId] }], Limit: 100,
      }, region());
    } catch (error) {
      showError(error);
      schedule(false);
      return;
    }
    instance = found.InstanceSet[0] || null;
    const box = document.getElementById("instance");
    if (!box) return;
    box.replaceChildren(instance
      ? h("div", {},
        h("h2", { text: `${instance.InstanceName} (${instance.InstanceId})` }),
        h("p", {}, `${tr("state")}: `, h("strong", { id: "instance-state",
          class: `state-${instance.InstanceState}`, text: instance.InstanceState }),
        ` · ${tr("disk")}: ${instance.SystemDisk.DiskId} · ${tr("ip")}: ` +
          `${(instance.PublicAddresses || []).join(", ") || "-"}`),
        h("div", { class: "row" }, powerButtons(instance)))
      : h("p", { text: instanceId }));
    try {
      const quota = await call("DescribeGeneralResourceQuotas", { ResourceNames: ["SNAPSHOT"] },
        region());
      const q = quota.GeneralResourceQuotaSet[0];
      document.getElementById("quota").textContent = `${tr("quota")}: ` + tr("quotaText", {
        used: q.ResourceQuotaTotal - q.ResourceQuotaAvailable, total: q.ResourceQuotaTotal,
        region: region() });
    } catch (error) {
      showError(error);
    }
    const selected = new Set([...document.querySelectorAll("input[data-select]:checked")]
      .map((b) => b.dataset.select));
    const rows = snaps.SnapshotSet.map((s) => h("tr", { "data-snapshot": s.SnapshotId },
      h("td", {}, h("input", { type: "checkbox", "data-select": s.SnapshotId,
        checked: selected.has(s.SnapshotId), "aria-label": tr("select", { id: s.SnapshotId }) })),
      nameCell(s),
      h("td", { text: s.SnapshotId }),
      h("td", { class: `state-${s.SnapshotState}`, "data-field": "state", text: s.SnapshotState }),
      h("td", {}, h("progress", { max: "100", value: String(s.Percent), "data-field": "progress",
        "aria-label": tr("progressOf", { id: s.SnapshotId }) }), ` ${s.Percent}%`),
      h("td", { "data-field": "operation",
        text: s.LatestOperation ? `${s.LatestOperation} (${s.LatestOperationState})` : "-" }),
      h("td", { class: "optional", text: time(s.CreatedTime) }),
      h("td", {}, h("button", { type: "button", "data-action": "rollback",
        "aria-label": `${tr("rollBack")} ${s.SnapshotId}`, onclick: () => rollBack(s),
        text: tr("rollBack") }))));
    const content = document.getElementById("content");
    content.replaceChildren(rows.length
      ? h("table", {}, h("caption", { class: "help", text: `${tr("snapshots")}: ${instanceId}` }),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col", text: tr("select", { id: "" }).trim() }),
          ["name", "id", "state", "progress", "operation", "created", "actions"]
            .map((k) => h("th", { scope: "col", class: k === "created" ? "optional" : null,
              text: tr(k) })))),
        h("tbody", {}, rows))
      : h("p", { text: tr("noSnapshots") }));
    const busy = (instance && busyInstance(instance)) ||
      snaps.SnapshotSet.some((s) => BUSY_STATES.has(s.SnapshotState) ||
        s.LatestOperationState === "OPERATING");
    schedule(busy && renaming === null);
  };
  await view();
}

// -- routing -----------------------------------------------------------------------------------

function route(hash) {
  if (location.hash !== hash) {
    location.hash = hash; // hashchange renders
    return;
  }
  render();
}

async function render() {
  clearTimeout(timer);
  view = null;
  renderHeader();
  const hash = location.hash || "#/instances";
  if (!session()) {
    signInPage();
    return;
  }
  const match = hash.match(/^#\/instance\/(lhins-[a-z0-9]{8})/);
  if (match) await instancePage(match[1]);
  else await instancesPage();
  app.focus();
}

window.addEventListener("hashchange", render);
render();
