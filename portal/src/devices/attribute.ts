/** A labelled value of a device or session, as `AttributeList` shows it. */
export interface Attribute {
  label: string;
  value: string | number | null | undefined;
  mono?: boolean;
}
