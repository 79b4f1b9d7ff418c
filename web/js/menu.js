/**
 * A popup menu (context menus and the toolbar's Workflow menu): a list of items
 * `{label, action, disabled?, checked?, hint?}`, `{separator: true}` or `{label, items}` submenus.
 * Closes on a choice, Escape, or a click elsewhere.
 */

let open = null;

export function closeMenu() {
  if (!open) return;
  open.remove();
  open = null;
}

function build(items, className) {
  const list = document.createElement("div");
  list.className = className;
  list.setAttribute("role", "menu");
  for (const item of items) {
    if (item.separator) {
      list.append(Object.assign(document.createElement("div"), { className: "menu-separator" }));
      continue;
    }
    const entry = document.createElement("button");
    entry.type = "button";
    entry.className = "menu-item";
    entry.setAttribute("role", "menuitem");
    entry.disabled = Boolean(item.disabled);
    const label = Object.assign(document.createElement("span"), { textContent: (item.checked ? "✓ " : "") + item.label });
    entry.append(label);
    if (item.hint || item.items) {
      entry.append(Object.assign(document.createElement("span"), { className: "menu-hint", textContent: item.items ? "▸" : item.hint }));
    }
    if (item.items) {
      entry.classList.add("has-submenu");
      const sub = build(item.items, "menu submenu");
      entry.append(sub);
    } else {
      entry.addEventListener("click", (e) => {
        e.stopPropagation();
        closeMenu();
        item.action?.();
      });
    }
    list.append(entry);
  }
  return list;
}

/** Show a menu at client coordinates (kept inside the window). */
export function showMenu(items, x, y) {
  closeMenu();
  const menu = build(items, "menu");
  document.body.append(menu);
  const rect = menu.getBoundingClientRect();
  menu.style.left = `${Math.max(4, Math.min(x, window.innerWidth - rect.width - 4))}px`;
  menu.style.top = `${Math.max(4, Math.min(y, window.innerHeight - rect.height - 4))}px`;
  open = menu;
  menu.querySelector(".menu-item:not([disabled])")?.focus({ preventScroll: true });
  return menu;
}

document.addEventListener("pointerdown", (e) => { if (open && !open.contains(e.target)) closeMenu(); }, true);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenu(); });
window.addEventListener("blur", closeMenu);
