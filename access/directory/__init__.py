"""Reading LDAP and Active Directory into kbsearch: client, attribute maps, sync."""
