-- One row per pre-training document after exact dedup and decontamination, with its category
-- (agent, code, text, or retrieved: a general document the seed classifier kept),
-- a token estimate, lineage back to the raw row, and its split.
with documents as (
    select * from {{ ref('int_deduplicated_corpus_documents') }}
),

contaminated as (
    select distinct doc_id from {{ ref('fct_contamination') }}
),

retrieved as (
    -- general documents the seed classifier retrieved (forge.text.retrieval; none while the
    -- profile keeps retrieval off): they leave code/text for the category 'retrieved'
    select doc_id, source_table from {{ ref('stg_forge__retrieval_scores') }}
    where is_retrieved
),

clean as (
    select documents.*
    from documents
    anti join contaminated using (doc_id)
),

recategorized as (
    select
        clean.* replace (
            case when retrieved.doc_id is not null then 'retrieved' else clean.category end as category
        )
    from clean
    left join retrieved
        on clean.doc_id = retrieved.doc_id and clean.source_table = retrieved.source_table
),

keyed as (
    select
        recategorized.*,
        {{ document_split_key('doc_id', 'source_table', 'source_row_id') }} as split_key
    from recategorized
),

final as (
    select
        doc_id,
        category,
        subcategory,
        text,
        n_chars,
        -- ~4 characters per token for English and code with a BPE tokenizer; the exact count is
        -- known after packing (the shard manifest).
        cast(ceil(n_chars / 4.0) as bigint) as n_tokens_est,
        is_seed,
        license,
        source_table,
        source_row_id,
        source_uri,
        api_ids,
        split_key,
        {{ split_of('split_key') }} as split
    from keyed
)

select * from final
