/**
 * The checks of the add-device form, the same the API makes (devices
 * router: serial 1..2^32-1, claim token 32 hex digits, PSK 16 to 32 bytes in
 * hex, name and label at most 100 characters), so most mistakes show before
 * a round trip. The API's 422 stays the authority.
 */

export interface DeviceForm {
  serial: string;
  name: string;
  label: string;
  claimToken: string;
  psk: string;
}

export type DeviceFormErrors = Partial<Record<keyof DeviceForm, string>>;

const MAX_SERIAL = 0xffff_ffff;

/** The serial number typed as digits, with or without `hsn:`; null when it is none. */
export function parseSerial(text: string): number | null {
  const digits = text.trim().replace(/^hsn:\s*/i, "");
  if (!/^\d{1,10}$/.test(digits)) return null;
  const serial = Number(digits);
  return serial >= 1 && serial <= MAX_SERIAL ? serial : null;
}

export function checkDeviceForm(form: DeviceForm): DeviceFormErrors {
  const errors: DeviceFormErrors = {};
  if (parseSerial(form.serial) === null) errors.serial = `A serial number from 1 to ${MAX_SERIAL}.`;
  if (form.name.length > 100) errors.name = "At most 100 characters.";
  if (form.label.length > 100) errors.label = "At most 100 characters.";
  if (!/^[0-9a-fA-F]{32}$/.test(form.claimToken.trim())) errors.claimToken = "32 hexadecimal digits.";
  const psk = form.psk.trim();
  if (psk !== "" && !/^([0-9a-fA-F]{2}){16,32}$/.test(psk)) {
    errors.psk = "16 to 32 bytes in hexadecimal (32 to 64 digits), or empty.";
  }
  return errors;
}

/** The API's body field of each form field, to put its 422 details in place. */
export const API_FIELDS: Record<string, keyof DeviceForm> = {
  serial: "serial",
  name: "name",
  label: "label",
  claim_token: "claimToken",
  psk: "psk",
};
