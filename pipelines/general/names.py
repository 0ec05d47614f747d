"""Person names the families draw from, so generated people read alike across environments.

Families take a prefix (`FIRST_NAMES[:12]`): the size of the pool is part of a family's
generator, and changing it would change every environment the family has made.
"""

FIRST_NAMES = ("Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea",
               "Mo", "Nia", "Oto", "Pia")
LAST_NAMES = ("Moss", "Nair", "Ortiz", "Park", "Quinn", "Rossi", "Sato", "Tran", "Udo", "Vega")
