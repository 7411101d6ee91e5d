import { describe, expect, it, vi } from "vitest";
import { exportFileName, fileSafe, saveBlob } from "./download";

describe("export file names", () => {
  it("say what and when, safely", () => {
    expect(exportFileName("green house/1", "ndjson", new Date(2026, 10, 27, 13, 5, 1))).toBe(
      "messages-green-house-1-20261127-130501.ndjson",
    );
    expect(fileSafe("///")).toBe("messages");
  });
});

describe("saveBlob", () => {
  it("clicks a download link to a Blob URL", () => {
    const create = vi.fn(() => "blob:x");
    URL.createObjectURL = create;
    URL.revokeObjectURL = vi.fn();
    const clicked: string[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(`${this.download} ${this.getAttribute("href")}`);
    });
    saveBlob(new Blob(["a"]), "m.csv");
    expect(clicked).toEqual(["m.csv blob:x"]);
    expect(document.querySelector("a[download]")).toBeNull();
  });
});
