/**
 * LDAP controls ldapts does not ship. ldapts sends any `Control` subclass as is (see DESIGN.md §4).
 */
import { Control } from 'ldapts';

/** LDAP_SERVER_SHOW_DELETED_OID: AD returns tombstones (isDeleted=TRUE) too. Value-less, critical. */
export class ShowDeletedControl extends Control {
  static readonly OID = '1.2.840.113556.1.4.417';
  constructor() {
    super(ShowDeletedControl.OID, { critical: true });
  }
}
