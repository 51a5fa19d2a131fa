// nbtrack's self-contained pages: the live panel and runs table, fed from state embedded
// in the page instead of a kernel. A page's loader calls ``nbtrackPage.show(host, page)``;
// ``page`` is {run: <the panel's state>} or {table: <the runs table's state>, history}.
import panel from "./panel.js";
import runs from "./runs.js";

// what the views read from an anywidget model, answered from a dict; ``answer`` turns a
// message the view sends into the reply a kernel would have sent (or null: no kernel)
function pageModel(state, answer) {
  const handlers = {};
  return {
    get: (name) => state[name],
    set() {},
    save_changes() {},
    on(event, cb) {
      (handlers[event] = handlers[event] || []).push(cb);
    },
    off(event, cb) {
      handlers[event] = (handlers[event] || []).filter((h) => h !== cb);
    },
    send(msg) {
      const reply = answer ? answer(msg) : null;
      if (!reply) throw new Error("no kernel: this is a saved page");
      queueMicrotask(() => (handlers["msg:custom"] || []).forEach((cb) => cb(reply, [])));
    },
  };
}

function show(host, page) {
  const view = document.createElement("div");
  view.className = "nbt-page-view";
  if (page.run) {
    panel.render({ model: pageModel(page.run), el: view });
  } else {
    const history = page.history || {};
    const names = Object.fromEntries((page.table.rows || []).map((r) => [r.id, r.name]));
    const of = (key, ids) => {
      const known = history[key] || {};
      return Object.fromEntries(ids.map((id) => [id, known[id] || [names[id] || id, [], []]]));
    };
    const answer = (msg) => {
      if (msg && msg.type === "history") return { type: "history", key: msg.key, series: of(msg.key, msg.ids || []) };
      if (msg && msg.type === "histories") {
        return { type: "histories", series: Object.fromEntries((msg.keys || []).map((k) => [k, of(k, msg.ids || [])])) };
      }
      return null;
    };
    runs.render({ model: pageModel(page.table, answer), el: view });
  }
  const old = host.querySelector(".nbt-static");
  host.append(view);
  if (old) old.remove();
  host.dataset.live = "1";
}

globalThis.nbtrackPage = { show };
