// The forms console's field editor and live preview (served as /console/static/forms.js).
//
// Progressive enhancement: the page works without it (the JSON definition is edited as
// text and "Preview" renders on the server).  With it, the fields are edited one by one —
// add, remove, reorder, type, label, validation, required, conditional show — and every
// change is written back into the JSON textarea, which stays the one thing the form posts.
// The preview applies each field's "show only when" rule as the hosted page's stylesheet
// does.  No inline script, no eval, no innerHTML: the CSP allows only this file.
"use strict";

(function () {
  const TYPES = ["text", "textarea", "email", "tel", "number", "date", "select", "radio",
    "checkbox", "file", "signature", "consent"];
  const CHOICES = ["select", "radio", "checkbox"];
  const TEXTS = ["text", "textarea", "email", "tel", "signature"];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (v === true) node.setAttribute(k, "");
      else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, String(v));
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function labelled(id, text, control) {
    return el("div", { class: "fe-cell" }, [el("label", { for: id, text: text }), control]);
  }

  // -- the editor ----------------------------------------------------------------------------
  function editor(area) {
    const host = el("div", { id: "field-editor", class: "stack" });
    const status = el("p", { class: "hint", id: "field-editor-status", role: "status" });
    area.parentElement.insertBefore(host, area.previousElementSibling);
    host.before(status);

    function read() {
      try {
        const doc = JSON.parse(area.value || "{}");
        if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("not an object");
        if (!Array.isArray(doc.fields)) doc.fields = [];
        return doc;
      } catch (e) {
        return null;
      }
    }

    function write(doc) {
      area.value = JSON.stringify(doc, null, 2);
    }

    function change(mutate) {
      const doc = read();
      if (!doc) return;
      mutate(doc.fields, doc);
      write(doc);
      render();
    }

    function choicesOf(fields, name) {
      const f = fields.find((x) => x.name === name);
      if (!f) return [];
      return f.type === "checkbox" ? ["yes"] : (f.options || []);
    }

    function row(fields, f, i) {
      const id = (s) => `fe-${i}-${s}`;
      const set = (key, value) => change((fs) => {
        if (value === "" || value === null || value === false) delete fs[i][key];
        else fs[i][key] = value;
      });
      const name = el("input", { id: id("name"), type: "text", value: f.name || "", pattern: "[a-z][a-z0-9_]{0,39}" });
      name.addEventListener("change", () => change((fs) => {
        const old = fs[i].name;
        fs[i].name = name.value.trim();
        for (const g of fs) if (g.show_if && g.show_if.field === old) g.show_if.field = fs[i].name;
      }));
      const label = el("input", { id: id("label"), type: "text", value: f.label || "" });
      label.addEventListener("change", () => set("label", label.value));
      const type = el("select", { id: id("type") }, TYPES.map((t) => el("option", { value: t, text: t, selected: t === f.type })));
      type.addEventListener("change", () => set("type", type.value));
      const required = el("input", { id: id("required"), type: "checkbox", checked: !!f.required });
      required.addEventListener("change", () => set("required", required.checked));
      const cells = [
        labelled(id("name"), "Name", name),
        labelled(id("label"), "Label", label),
        labelled(id("type"), "Type", type),
        el("div", { class: "fe-cell" }, [el("label", { class: "check" }, [required, " Required"])]),
      ];
      if (f.type === "select" || f.type === "radio") {
        const options = el("input", { id: id("options"), type: "text", value: (f.options || []).join(", ") });
        options.addEventListener("change", () => set("options", options.value.split(",").map((s) => s.trim()).filter(Boolean)));
        cells.push(labelled(id("options"), "Choices (comma-separated)", options));
      }
      if (TEXTS.includes(f.type)) {
        const max = el("input", { id: id("max"), type: "number", min: 1, max: 10000, value: f.max_length || 1000 });
        max.addEventListener("change", () => set("max_length", parseInt(max.value, 10) || null));
        cells.push(labelled(id("max"), "Longest answer (characters)", max));
      }
      if (f.type === "number") {
        for (const bound of ["min", "max"]) {
          const input = el("input", { id: id(bound), type: "number", step: "any", value: f[bound] ?? "" });
          input.addEventListener("change", () => set(bound, input.value === "" ? null : Number(input.value)));
          cells.push(labelled(id(bound), bound === "min" ? "Smallest" : "Largest", input));
        }
      }
      if (f.type === "consent") {
        const text = el("input", { id: id("text"), type: "text", value: f.text || "" });
        text.addEventListener("change", () => set("text", text.value));
        cells.push(labelled(id("text"), "Statement agreed to", text));
      }
      // Conditional show: an earlier choice field and one of its values.
      const earlier = fields.slice(0, i).filter((g) => CHOICES.includes(g.type));
      if (earlier.length) {
        const cond = f.show_if || {};
        const on = el("select", { id: id("showif") }, [el("option", { value: "", text: "Always" }),
          ...earlier.map((g) => el("option", { value: g.name, text: g.name, selected: g.name === cond.field }))]);
        const equals = el("select", { id: id("equals"), disabled: !cond.field },
          choicesOf(fields, cond.field).map((c) => el("option", { value: c, text: c, selected: c === cond.equals })));
        const update = () => change((fs) => {
          if (!on.value) delete fs[i].show_if;
          else {
            const values = choicesOf(fs, on.value);
            const value = values.includes(equals.value) && on.value === cond.field ? equals.value : values[0] || "";
            fs[i].show_if = { field: on.value, equals: value };
          }
        });
        on.addEventListener("change", update);
        equals.addEventListener("change", update);
        cells.push(labelled(id("showif"), "Show only when", on), labelled(id("equals"), "is", equals));
      }
      const move = (delta, text) => {
        const b = el("button", { type: "button", class: "secondary", text: text, disabled: i + delta < 0 || i + delta >= fields.length });
        b.addEventListener("click", () => change((fs) => { fs.splice(i + delta, 0, fs.splice(i, 1)[0]); }));
        return b;
      };
      const remove = el("button", { type: "button", class: "danger", text: "Remove" });
      remove.addEventListener("click", () => change((fs) => { fs.splice(i, 1); }));
      const actions = el("div", { class: "fe-actions" }, [move(-1, "Move up"), move(1, "Move down"), remove]);
      return el("fieldset", { class: "fe-field", "data-field": f.name || "" },
        [el("legend", { text: `Field ${i + 1}: ${f.label || f.name || "(unnamed)"}` }), ...cells, actions]);
    }

    function render() {
      const doc = read();
      host.replaceChildren();
      if (!doc) {
        status.textContent = "The JSON below does not parse: fix it and the field editor comes back.";
        return;
      }
      status.textContent = `${doc.fields.length} field(s). Changes here are written into the definition below.`;
      doc.fields.forEach((f, i) => host.append(row(doc.fields, f, i)));
      const add = el("button", { type: "button", class: "secondary", id: "fe-add", text: "Add a field" });
      add.addEventListener("click", () => change((fs) => {
        let n = fs.length + 1;
        while (fs.some((f) => f.name === `field_${n}`)) n += 1;
        fs.push({ name: `field_${n}`, label: `Question ${n}`, type: "text" });
      }));
      host.append(add);
    }

    area.addEventListener("change", render);
    render();
  }

  // -- the preview -----------------------------------------------------------------------------
  function preview(box) {
    let rules;
    try {
      rules = JSON.parse(box.getAttribute("data-conditions") || "[]");
    } catch (e) {
      return;
    }
    function valueOf(name) {
      const controls = box.querySelectorAll(`[name="${CSS.escape(name)}"]`);
      for (const c of controls) {
        if (c.type === "radio" || c.type === "checkbox") {
          if (c.checked) return c.value;
        } else return c.value;
      }
      return "";
    }
    function apply() {
      for (const r of rules) {
        const field = box.querySelector(`.c-${CSS.escape(r.name)}`);
        if (field) field.hidden = valueOf(r.field) !== r.equals;
      }
    }
    box.addEventListener("change", apply);
    box.addEventListener("input", apply);
    apply();
    const note = document.getElementById("preview-note");
    if (note) note.textContent = "Conditional fields appear as you answer, as on the hosted page.";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const area = document.getElementById("definition");
    if (area) editor(area);
    const box = document.getElementById("preview");
    if (box) preview(box);
  });
})();
