-- Every document that may enter the pre-training corpus, in one shape, with lineage.
-- Held-out providers' agent documents never get here (they feed the unseen-API benchmark).
with agent as (
    select * from {{ ref('stg_forge__agent_documents') }}
),

code as (
    select * from {{ ref('stg_forge__code_documents') }}
),

text as (
    select * from {{ ref('stg_forge__text_documents') }}
),

agent_candidates as (
    select
        doc_id, category, subcategory, text, n_chars, sha256, license, is_seed,
        source_table, source_row_id, source_uri, api_ids
    from agent
    where not is_heldout
),

general_candidates as (
    select
        doc_id, category, subcategory, text, n_chars, sha256, license, false as is_seed,
        category || '_documents' as source_table, doc_id as source_row_id, source_uri,
        []::varchar[] as api_ids
    from code
    union all
    select
        doc_id, category, subcategory, text, n_chars, sha256, license, false as is_seed,
        category || '_documents' as source_table, doc_id as source_row_id, source_uri,
        []::varchar[] as api_ids
    from text
),

final as (
    select * from agent_candidates
    union all
    select * from general_candidates
)

select * from final
