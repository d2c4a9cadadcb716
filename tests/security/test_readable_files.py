"""`readable_by` (the SQL form of the access rule) agrees with the indexes' rule for every
kind of file and every person, so a file listing never shows what search would hide."""

from __future__ import annotations

import itertools
import uuid

from sqlalchemy import select

from copilot.db.models import CLASSIFICATIONS, FILE_SCOPES, Department, File
from copilot.knowledge.access import file_access, readable_by
from copilot.knowledge.knowledge_base import KnowledgeBase
from tests.conftest import People


async def test_the_sql_rule_is_the_index_rule_for_every_file_and_person(
    kb: KnowledgeBase, people: People
) -> None:
    everyone = [people.alice, people.bob, people.carol, people.power, people.admin]
    async with kb.sessions() as session:
        departments = [d.id for d in (await session.scalars(select(Department))).all()]
        for owner, scope, department, classification in itertools.product(
            everyone[:3] + [people.power], FILE_SCOPES, departments[:3] + [None], CLASSIFICATIONS
        ):
            if scope == "department" and department is None:
                continue  # ingestion refuses department knowledge without a department
            session.add(
                File(
                    owner_id=uuid.UUID(owner.user_id),
                    original_name=f"{scope}-{classification}.md",
                    mime_type="text/markdown",
                    size_bytes=1,
                    sha256=uuid.uuid4().hex,
                    scope=scope,
                    department_id=department,
                    classification=classification,
                    status="ready",
                )
            )
        await session.commit()
        files = list((await session.scalars(select(File))).all())
        assert len(files) == 4 * (len(FILE_SCOPES) * 4 - 1) * len(CLASSIFICATIONS)
        for person in everyone:
            listed = set(
                (await session.scalars(select(File.id).where(readable_by(person.scope)))).all()
            )
            allowed = {f.id for f in files if person.scope.allows(file_access(f))}
            assert listed == allowed, person.email
            assert allowed  # everyone reads something here, so the comparison means something
            assert len(allowed) < len(files)  # and nobody reads everything
